#include "models/ssm.h"

#include <cmath>
#include <utility>

#include "core/error.h"
#include "core/rng.h"
#include "layers/patch_local.h"
#include "models/cpu_ops.h"
#include "models/ops_model.h"
#ifdef BYTELM_WITH_CUDA
#include "core/bf16.h"
#include "models/cuda_ops.h"
#endif

namespace bytelm {

namespace {

// Per-block activations over M = B * Tp patch rows (pointers into two buffers): the
// rows in the backend's activation type A, the LayerNorm statistics in the model's T.
// S is the row stride of the SwiGLU hidden activations (the backend's hidden_stride(H)).
// Each array starts 16-byte aligned (whole multiples of 16 bytes before it), which the
// GPU kernels' wide loads need.
template <class T, class A>
struct BlockActs {
  A *ln1, *u, *h, *q, *ln2, *g, *m;
  T *ln1_mean, *ln1_rstd, *ln2_mean, *ln2_rstd;
  static size_t rows_size(size_t M, int d, int S) {
    auto aligned = [](size_t n) { return aligned16_count<A>(n); };
    return 5 * aligned(M * d) + aligned(M * 2 * S) + aligned(M * S);
  }
  static size_t stats_size(size_t M) { return 4 * M; }
  static BlockActs carve(A* rows, T* stats, size_t M, int d, int S) {
    BlockActs a;
    auto take = [&](size_t n) { return take_aligned16(rows, n); };
    a.ln1 = take(M * d); a.u = take(M * d); a.h = take(M * d); a.q = take(M * d); a.ln2 = take(M * d);
    a.g = take(M * 2 * S); a.m = take(M * S);
    a.ln1_mean = stats; a.ln1_rstd = stats + M; a.ln2_mean = stats + 2 * M; a.ln2_rstd = stats + 3 * M;
    return a;
  }
};

// How a patch is pooled from its bytes and read back by them (config.patching; "none" is mean at patch 1).
enum class Patching { mean, attn, local, soft, entropy };

Patching patching_of(const std::string& name) {
  if (name == "attn") return Patching::attn;
  if (name == "local") return Patching::local;
  if (name == "soft") return Patching::soft;
  if (name == "entropy") return Patching::entropy;
  return Patching::mean;
}

// The byte-rate blocks of patching local (layers/patch_local.h).
constexpr int kLocalBlocks = 1;

// One composition for every backend: Ops (cpu_ops.h, cuda_ops.h) supplies the
// buffers and the layer calls, OpsModel the device copies of the parameters
// (ops_model.h). Activations are stored as A = Ops::Act<T> (T on the CPU, bf16
// on the GPU's fast path), and the matrix products read their weights as A (WA()).
// The patching variants differ in four places only: their parameters (constructor), pool_forward/pool_backward,
// unpool_forward/unpool_backward, and the streams' pool_step/unpool_step.
template <class T, class Ops>
class SsmModel final : public OpsModel<T, Ops> {
  using A = typename OpsModel<T, Ops>::A;
  using OpsModel<T, Ops>::ops_;
  using OpsModel<T, Ops>::W;
  using OpsModel<T, Ops>::WA;
  using OpsModel<T, Ops>::G;

 public:
  // ops_args go to the backend (CudaOps takes its GemmPrecision).
  template <class... OpsArgs>
  SsmModel(const ModelConfig& config, uint64_t seed, OpsArgs... ops_args)
      : OpsModel<T, Ops>(ops_args...), patching_(patching_of(config.patching)) {
    this->config_ = config;
    int d = config.d;
    emb_ = this->add_param("embed.weight", {256, d});
    start_ = this->add_param("start", {d});
    if (patching_ == Patching::attn) query_ = this->add_param("patch.query", {d});
    if (patching_ == Patching::soft) {
      boundary_w_ = this->add_param("patch.boundary.weight", {d});
      boundary_c_ = this->add_param("patch.boundary.bias", {1});
    }
    // a table of logits, not a projection: weight decay would pull it to the uniform, all boundaries
    if (patching_ == Patching::entropy) bigram_ = this->add_param("patch.bigram.weight", {256, 256}, false);
    for (int l = 0; l < config.layers; l++) layers_.push_back(add_block("blocks." + std::to_string(l) + "."));
    if (patching_ == Patching::local)
      for (int l = 0; l < kLocalBlocks; l++) local_.push_back(add_block("local." + std::to_string(l) + "."));
    lnf_w_ = this->add_param("norm.weight", {d});
    lnf_b_ = this->add_param("norm.bias", {d});
    head_ = this->add_param("head.weight", {256, d});
    this->allocate();
    init(seed);
    this->place_params();
  }

  // Under patching entropy the loss returned (and differentiated) adds the bigram table's own mean loss to the
  // model's; row_loss holds the model's alone, which is what scoring and the leak check read.
  T forward(const uint8_t* x, const uint8_t* y, int B, int T_, T* row_loss) override {
    const ModelConfig& c = this->config_;
    int d = c.d, P = c.patch, N = B * T_, M = B * patch_count(T_, P);
    ensure(B, T_);
    const uint8_t* xd = ops_.put_bytes(x_, x, N);
    const uint8_t* yd = ops_.put_bytes(y_, y, N);
    const T* W = this->W();
    ops_.embedding_forward(e_.data(), xd, W + emb_, N, d);
    if (patching_ == Patching::entropy) ops_.entropy_patches(patches_, W + bigram_, xd, B, T_, P, c.entropy_threshold);
    pool_forward(stream_at(0), e_.data(), B, T_);
    if (M > 0)
      for (int l = 0; l < c.layers; l++)
        block_forward(layers_[l], stream_at(l), stream_at(l + 1), acts(l), B, T_ / P, T_ / P, nullptr, nullptr);
    const A* top = unpool_forward(B, T_);
    output_forward(logits_.data(), z_.data(), zstat_.data(), top, N);
    ops_.cross_entropy(loss_.data(), (A*)nullptr, logits_.data(), yd, N, T(0));
    const T* bigram_loss = nullptr;
    if (patching_ == Patching::entropy) {
      ops_.bigram_loss_forward(bigram_loss_.data(), W + bigram_, xd, yd, N);
      bigram_loss = bigram_loss_.data();
    }
    return this->last_loss_ = ops_.mean_loss(loss_.data(), N, row_loss, bigram_loss);
  }

  void backward() override {
    const ModelConfig& c = this->config_;
    int d = c.d, P = c.patch, B = batch_, N = B * seq_, M = B * patch_count(seq_, P);
    const T* W = this->W();
    T* G = this->G();
    A* dlogits = logits_.data();  // the logits are not needed again: reuse in place
    ops_.cross_entropy(loss_.data(), dlogits, logits_.data(), y_.data(), N, T(1) / N);
    A* dz = bufA_.data();
    ops_.linear_backward(dz, G + head_, dlogits, z_.data(), WA() + head_, N, d, 256, false);
    ops_.layernorm_backward(bufB_.data(), G + lnf_w_, G + lnf_b_, dz, top(), zstat_.data(), zstat_.data() + N,
                            W + lnf_w_, N, d, false);
    A* de = bufA_.data();
    unpool_backward(de, bufB_.data(), B, seq_);
    if (M > 0)
      for (int l = c.layers - 1; l >= 0; l--)
        block_backward(layers_[l], stream_at(l), acts(l), B, seq_ / P, seq_ / P, dp_.data());
    pool_backward(de, dp_.data(), B, seq_);
    if (patching_ == Patching::entropy)
      ops_.bigram_loss_backward(G + bigram_, W + bigram_, x_.data(), y_.data(), N, T(1) / N);
    ops_.embedding_backward(G + emb_, de, x_.data(), N, d);
  }

  // B streams on the model's own device, through the same layer code as the parallel forward (Streams below).
  std::unique_ptr<ByteStreams<T>> make_streams(int B) const override {
    if (B < 1) throw Error("make_streams needs at least one stream");
    return std::make_unique<Streams>(*this, B);
  }

 private:
  struct Layer {
    size_t ln1_w, ln1_b, w_in, lam, w_out, D, ln2_w, ln2_b, w12, w3;
  };

  Layer add_block(const std::string& p) {
    int d = this->config_.d, H = this->config_.hidden();
    Layer L;
    L.ln1_w = this->add_param(p + "norm1.weight", {d});
    L.ln1_b = this->add_param(p + "norm1.bias", {d});
    L.w_in = this->add_param(p + "ssm.in.weight", {d, d});
    L.lam = this->add_param(p + "ssm.decay", {d});
    L.w_out = this->add_param(p + "ssm.out.weight", {d, d});
    L.D = this->add_param(p + "ssm.D", {d});
    L.ln2_w = this->add_param(p + "norm2.weight", {d});
    L.ln2_b = this->add_param(p + "norm2.bias", {d});
    L.w12 = this->add_param(p + "mlp.w12.weight", {2 * H, d});
    L.w3 = this->add_param(p + "mlp.w3.weight", {d, H});
    return L;
  }

  // Small GPT-style init: unit-variance embeddings, 1/sqrt(fan_in) matrices,
  // residual output projections scaled down by sqrt(2 L), a quiet head so the
  // first loss is near ln 256. The variants start where they are the mean pooling or near it: patch.query and
  // the bigram table zero (equal weights; uniform, so every patch closes at P bytes), the soft boundary scores
  // all sigmoid(-log P) = 1/(P+1), so a patch's weights fade over about P bytes. The local blocks are drawn last,
  // so that the rest of the model is the mean model's of the same seed.
  void init(uint64_t seed) {
    const ModelConfig& c = this->config_;
    Rng rng(seed);
    int d = c.d;
    double out_scale = 1.0 / std::sqrt(2.0 * c.layers);
    this->init_normal(rng, emb_, 256 * (size_t)d, 1.0);
    for (const Layer& L : layers_) init_block(rng, L, out_scale, c.patch);
    this->init_fill(lnf_w_, d, 1);
    this->init_normal(rng, head_, 256 * (size_t)d, 0.1 / std::sqrt(double(d)));
    if (patching_ == Patching::soft) this->init_fill(boundary_c_, 1, -std::log(double(c.patch)));
    for (const Layer& L : local_) init_block(rng, L, 1.0 / std::sqrt(2.0 * kLocalBlocks), 1);  // a byte a step
  }

  template <class R>
  void init_block(R& rng, const Layer& L, double out_scale, int steps_per_byte) {
    int d = this->config_.d, H = this->config_.hidden();
    this->init_fill(L.ln1_w, d, 1);
    this->init_fill(L.ln2_w, d, 1);
    this->init_normal(rng, L.w_in, (size_t)d * d, 1 / std::sqrt(double(d)));
    diag_ssm_init_decay(this->params_.data() + L.lam, d, steps_per_byte);
    this->init_normal(rng, L.w_out, (size_t)d * d, out_scale / std::sqrt(double(d)));
    this->init_fill(L.D, d, 1);
    this->init_normal(rng, L.w12, (size_t)2 * H * d, 1 / std::sqrt(double(d)));
    this->init_normal(rng, L.w3, (size_t)d * H, out_scale / std::sqrt(double(H)));
  }

  void ensure(int B, int seq) {
    batch_ = B;
    seq_ = seq;
    const ModelConfig& c = this->config_;
    size_t N = (size_t)B * seq, M = (size_t)B * patch_count(seq, c.patch), d = c.d, S = Ops::hidden_stride(c.hidden());
    if (N <= capacity_N_ && M <= capacity_M_) return;
    capacity_N_ = N;
    capacity_M_ = M;
    size_t L = local_.size(), block_rows = L ? std::max(M, N) : M;  // the rows one block's backward works on
    for (auto* b : {&e_, &up_, &z_, &bufA_, &bufB_}) Ops::resize(*b, N * d);
    Ops::resize(zstat_, 2 * N);
    Ops::resize(logits_, N * 256);
    Ops::resize(loss_, N);
    Ops::resize(stream_, (c.layers + 1) * M * d);
    Ops::resize(acts_, c.layers * Acts::rows_size(M, c.d, S));
    Ops::resize(stats_, c.layers * Acts::stats_size(M));
    Ops::resize(local_stream_, L * N * d);
    Ops::resize(local_acts_, L * Acts::rows_size(N, c.d, S));
    Ops::resize(local_stats_, L * Acts::stats_size(N));
    Ops::resize(dp_, M * d);
    Ops::resize(pool_weights_, patching_ == Patching::attn ? M * c.patch : 0);
    bool soft = patching_ == Patching::soft;
    Ops::resize(soft_n_, soft ? N * d : 0);
    Ops::resize(soft_z_, soft ? N : 0);
    Ops::resize(soft_keep_, soft ? N : 0);
    Ops::resize(bigram_loss_, patching_ == Patching::entropy ? N : 0);
    Ops::resize(dtmp_, block_rows * d);
    Ops::resize(scratch_, block_rows * std::max(3 * S, d));
  }

  // Residual stream entering block l (l = layers: the output of the last block).
  using Acts = BlockActs<T, A>;
  A* stream_at(int l) { return stream_.data() + (size_t)l * capacity_M_ * this->config_.d; }
  Acts acts(int l) {
    int d = this->config_.d, S = Ops::hidden_stride(this->config_.hidden());
    return Acts::carve(acts_.data() + l * Acts::rows_size(capacity_M_, d, S),
                       stats_.data() + l * Acts::stats_size(capacity_M_), capacity_M_, d, S);
  }
  // The byte rows entering local block l: the broadcast's output, then each local block's.
  A* local_at(int l) {
    return l == 0 ? up_.data() : local_stream_.data() + (size_t)(l - 1) * capacity_N_ * this->config_.d;
  }
  Acts local_acts(int l) {
    int d = this->config_.d, S = Ops::hidden_stride(this->config_.hidden());
    return Acts::carve(local_acts_.data() + l * Acts::rows_size(capacity_N_, d, S),
                       local_stats_.data() + l * Acts::stats_size(capacity_N_), capacity_N_, d, S);
  }
  // The variants that pool fixed windows of P bytes, all the bytes of each.
  bool fixed_windows() const {
    return patching_ == Patching::mean || patching_ == Patching::attn || patching_ == Patching::local;
  }
  // What the final LayerNorm reads: the broadcast's output, or the last local block's.
  A* top() { return local_at((int)local_.size()); }

  // p [B, T_/P, d] = the pools of e [B, T_, d] (for entropy, of the patches_ found by forward).
  void pool_forward(A* p, const A* e, int B, int T_) {
    const ModelConfig& c = this->config_;
    const T* W = this->W();
    if (patching_ == Patching::attn)
      return ops_.patch_attn_forward(p, pool_weights_.data(), e, W + query_, B, T_, c.patch, c.d);
    switch (patching_) {
      case Patching::soft:
        return ops_.patch_soft_forward(p, soft_n_.data(), soft_z_.data(), soft_keep_.data(), e, W + boundary_w_,
                                       W + boundary_c_, B, T_, c.patch, c.d, (T*)nullptr);
      case Patching::entropy: return ops_.patch_entropy_pool_forward(p, e, patches_, c.d);
      default: break;
    }
    ops_.patch_mean_forward(p, e, B, T_, c.patch, c.d);
  }

  // de += d(loss)/de from dp = d(loss)/dp, for the last forward's pooling (and its parameters' gradients).
  void pool_backward(A* de, const A* dp, int B, int T_) {
    const ModelConfig& c = this->config_;
    const T* W = this->W();
    T* G = this->G();
    if (patching_ == Patching::attn)
      return ops_.patch_attn_backward(de, G + query_, dp, e_.data(), W + query_, pool_weights_.data(), B, T_, c.patch,
                                      c.d);
    switch (patching_) {
      case Patching::soft:
        return ops_.patch_soft_backward(de, G + boundary_w_, G + boundary_c_, dp, e_.data(), W + boundary_w_,
                                        soft_n_.data(), soft_z_.data(), soft_keep_.data(), B, T_, c.patch, c.d);
      case Patching::entropy: return ops_.patch_entropy_pool_backward(de, dp, patches_, c.d);
      default: break;
    }
    ops_.patch_mean_backward(de, dp, B, T_, c.patch, c.d);
  }

  // Each byte's patch-rate context plus its embedding (up_), then the local blocks; returns top().
  const A* unpool_forward(int B, int T_) {
    const ModelConfig& c = this->config_;
    const A* p = stream_at(c.layers);
    if (patching_ == Patching::entropy)
      ops_.patch_entropy_broadcast_forward(up_.data(), p, this->W() + start_, e_.data(), patches_, c.d);
    else
      ops_.patch_broadcast_forward(up_.data(), p, this->W() + start_, e_.data(), B, T_, c.patch, c.d);
    for (size_t l = 0; l < local_.size(); l++)
      block_forward(local_[l], local_at(l), local_at(l + 1), local_acts(l), B, T_, c.patch, nullptr, nullptr);
    return top();
  }

  // From dtop = d(loss)/d(top()) (overwritten): de = d(loss)/de through the broadcast, dp_ = d(loss)/dp.
  void unpool_backward(A* de, A* dtop, int B, int T_) {
    const ModelConfig& c = this->config_;
    for (int l = (int)local_.size() - 1; l >= 0; l--)
      block_backward(local_[l], local_at(l), local_acts(l), B, T_, c.patch, dtop);
    if (patching_ == Patching::entropy)
      return ops_.patch_entropy_broadcast_backward(dp_.data(), this->G() + start_, de, dtop, patches_, c.d);
    ops_.patch_broadcast_backward(dp_.data(), this->G() + start_, de, dtop, B, T_, c.patch, c.d);
  }

  DiagSsmWeights<T, A> ssm_weights(const Layer& L) const {
    const T* W = this->W();
    const A* WA = this->WA();
    return {WA + L.w_in, W + L.lam, WA + L.w_out};
  }

  // out = q + SwiGLU(LN2(q)), q = in + DiagSSM(z) + D z, z = LN1(in), over B rows of T_ (patches or bytes) whose
  // SSM restarts every `scan` rows (layers/patch_local.h; scan = T_ for the patch-rate blocks). The sum for q and
  // LN2 are one pass (skip_layernorm_forward), the SSM's output written where q then goes. h0 ([B, d] or null) is
  // the SSM state before the first row; h_last ([B, d] or null, may be h0) receives the state after the last one:
  // for streams, one row each.
  void block_forward(const Layer& L, const A* in, A* out, Acts a, int B, int T_, int scan, const T* h0,
                     T* h_last) const {
    const T* W = this->W();
    int d = this->config_.d, H = this->config_.hidden(), M = B * T_;
    ops_.layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, in, W + L.ln1_w, W + L.ln1_b, M, d);
    for_each_patch_scan(B, T_, scan, [&](size_t row, int sequences, int length) {
      size_t o = row * d;
      ops_.diag_ssm_forward(a.q + o, a.u + o, a.h + o, a.ln1 + o, ssm_weights(L), sequences, length, d, h0, h_last);
    });
    ops_.skip_layernorm_forward(a.q, a.ln2, a.ln2_mean, a.ln2_rstd, in, a.q, a.ln1, W + L.D, W + L.ln2_w, W + L.ln2_b,
                                M, d);
    ops_.swiglu_forward(out, a.g, a.m, a.ln2, WA() + L.w12, WA() + L.w3, M, d, H, a.q);
  }

  // grad holds d(loss)/d(out) on entry and d(loss)/d(in) on return.
  void block_backward(const Layer& L, const A* in, Acts a, int B, int T_, int scan, A* grad) {
    const T* W = this->W();
    T* G = this->G();
    int d = this->config_.d, H = this->config_.hidden(), M = B * T_;
    A* dtmp = dtmp_.data();
    ops_.swiglu_backward(dtmp, G + L.w12, G + L.w3, grad, a.ln2, a.g, a.m, WA() + L.w12, WA() + L.w3, M, d, H,
                         scratch_.data());
    ops_.layernorm_backward(grad, G + L.ln2_w, G + L.ln2_b, dtmp, a.q, a.ln2_mean, a.ln2_rstd, W + L.ln2_w, M, d,
                            true);
    DiagSsmGrads<T> g{G + L.w_in, G + L.lam, G + L.w_out};
    for_each_patch_scan(B, T_, scan, [&](size_t row, int sequences, int length) {
      size_t o = row * d;
      ops_.diag_ssm_backward(dtmp + o, g, grad + o, a.ln1 + o, a.u + o, a.h + o, ssm_weights(L), sequences, length,
                             d, scratch_.data());
    });
    ops_.skip_sum_layernorm_backward(grad, G + L.ln1_w, G + L.ln1_b, G + L.D, dtmp, in, a.ln1, W + L.D, a.ln1_mean,
                                     a.ln1_rstd, W + L.ln1_w, M, d);
  }

  // logits [N, 256] = Head(LN(top)); z [N, d] and zstat (mean [N], rstd [N]) kept for the backward.
  void output_forward(A* logits, A* z, T* zstat, const A* top, int N) const {
    const T* W = this->W();
    int d = this->config_.d;
    ops_.layernorm_forward(z, zstat, zstat + N, top, W + lnf_w_, W + lnf_b_, N, d);
    ops_.linear_forward(logits, z, WA() + head_, N, d, 256);
  }

  // Streaming: B streams stepped together, a byte at a time, through the same layer code as the parallel forward:
  // the patch-rate blocks at Tp = 1 whenever a patch closes (the SSM states passed in as h0 and taken back as
  // h_last, in fp32), the local blocks at every byte. State per stream, O(1): per block the SSM state, the latest
  // patch output, and what the open patch needs. Fixed patches (mean, attn, local) keep the open patch's
  // embeddings slot-major, [P][B][d], so one byte's embeddings land in one contiguous slot and the P slots of all
  // B streams mean-pool as one sequence of P rows of width B d; attention scores each stream's bytes on their own,
  // so it pools a stream-major copy, [B][P][d] (open_by_stream). Soft keeps its scan (n [B, d], z [B]); entropy
  // the sum and length of each stream's open patch, whose patches close at different bytes, and which streams have
  // a patch to read (one's sources: -1 before the first, then 0, the latest).
  struct Streams final : ByteStreams<T> {
    const SsmModel& m;
    int B, d, P, count = 0;  // count: bytes in the open patch (each stream its own under entropy: open_length)
    bool have_patch = false;  // fixed patches: whether one is complete (before, the bytes read the start vector)
    typename Ops::template Buffer<uint8_t> bytes;
    typename Ops::template Buffer<int> open_length, closes;  // entropy: closes[b], whether b's patch closed now
    typename Ops::Patches one;
    typename Ops::template Buffer<T> h, h_local, h_next, soft_state, soft_scan, open_sum, pool_weights, zstat, stats;
    typename Ops::template Buffer<A> open, open_by_stream, e_byte, patch_a, patch_b, patch_out, latest, up,
        local_spare, z, logits, acts;  // h: [layers][B][d]
    Streams(const SsmModel& model, int streams) : m(model), B(streams) {
      const ModelConfig& c = m.config_;
      d = c.d;
      P = c.patch;
      int S = Ops::hidden_stride(c.hidden());
      bool attn = m.patching_ == Patching::attn, soft = m.patching_ == Patching::soft;
      bool entropy = m.patching_ == Patching::entropy;
      Ops::resize(open_length, entropy ? B : 0);
      Ops::resize(closes, entropy ? B : 0);
      Ops::resize(open_sum, entropy ? (size_t)B * d : 0);
      if (entropy) m.ops_.entropy_stream_patches(one, B);
      Ops::resize(h, (size_t)c.layers * B * d);
      Ops::resize(h_local, m.local_.size() * B * d);
      Ops::resize(h_next, entropy ? (size_t)c.layers * B * d : 0);
      for (auto* buf : {&patch_a, &patch_b, &latest, &up, &z, &e_byte}) Ops::resize(*buf, (size_t)B * d);
      Ops::resize(patch_out, entropy ? (size_t)B * d : 0);
      Ops::resize(local_spare, m.local_.empty() ? 0 : (size_t)B * d);
      Ops::resize(open, m.fixed_windows() ? (size_t)P * B * d : 0);
      Ops::resize(open_by_stream, attn ? (size_t)B * P * d : 0);
      Ops::resize(pool_weights, attn ? (size_t)B * P : 0);
      Ops::resize(soft_state, soft ? (size_t)B * (d + 1) : 0);
      Ops::resize(soft_scan, soft ? (size_t)B * (d + 2) : 0);  // one byte's n [B, d], z [B] and keep [B]
      Ops::resize(logits, (size_t)B * 256);
      Ops::resize(zstat, 2 * (size_t)B);
      Ops::resize(acts, Acts::rows_size(B, d, S));
      Ops::resize(stats, Acts::stats_size(B));
    }
    void step(const uint8_t* bytes_host, T* logits_host) override {
      const T* W = m.W();
      const uint8_t* x = m.ops_.put_bytes(bytes, bytes_host, B);
      bool patch_starts = count == 0;  // at this byte (for the fixed patches the local blocks restart at)
      A* e = m.fixed_windows() ? open.data() + (size_t)count * B * d : e_byte.data();
      m.ops_.embedding_forward(e, x, W + m.emb_, B, d);
      count = (count + 1) % P;
      if (pool_step(e, x, count == 0)) run_blocks();
      unpool_step(e, patch_starts);
      m.ops_.copy_to_host(logits_host, logits.data(), (size_t)B * 256);
    }

    // Adds byte e [B, d] (x [B], on the device) to every stream's open patch; when patches close, patch_a [B, d]
    // receives them and it returns true (under entropy closes says which, and the GPU answers true every byte;
    // with fixed patches all close together, when `window_full`).
    bool pool_step(const A* e, const uint8_t* x, bool window_full) {
      const T* W = m.W();
      if (m.patching_ == Patching::soft) {  // the scan advances every byte; a patch is read at window ends
        T* n = soft_scan.data();
        m.ops_.patch_soft_forward(patch_a.data(), n, n + (size_t)B * d, n + (size_t)B * (d + 1), e, W + m.boundary_w_,
                                  W + m.boundary_c_, B, 1, 1, d, soft_state.data());
        return window_full;
      }
      if (m.patching_ == Patching::entropy)  // the same sums and decisions as entropy_patches and its pooling
        return m.ops_.patch_entropy_step(patch_a.data(), closes.data(), open_sum.data(), open_length.data(), one, e,
                                         x, W + m.bigram_, B, P, d, m.config_.entropy_threshold);
      if (!window_full) return false;
      if (m.patching_ == Patching::attn) {
        for (int r = 0; r < P; r++)  // slot r of every stream: B rows of d, from [r][B][d] to [B][P][d]
          m.ops_.copy_rows(open_by_stream.data() + (size_t)r * d, (size_t)P * d, open.data() + (size_t)r * B * d, d, d,
                           B);
        m.ops_.patch_attn_forward(patch_a.data(), pool_weights.data(), open_by_stream.data(), W + m.query_, B, P, P,
                                  d);
        return true;
      }
      m.ops_.patch_mean_forward(patch_a.data(), open.data(), 1, P, P, B * d);
      return true;
    }

    // The patch-rate blocks over patch_a, into latest; under entropy for every stream, kept for those whose patch
    // closed (closes), the others' states and outputs left as they were.
    void run_blocks() {
      const ModelConfig& c = m.config_;
      bool some = m.patching_ == Patching::entropy;
      Acts a = Acts::carve(acts.data(), stats.data(), B, d, Ops::hidden_stride(c.hidden()));
      A *in = patch_a.data(), *spare = patch_b.data();
      for (int l = 0; l < c.layers; l++) {
        A* out = l < c.layers - 1 ? spare : some ? patch_out.data() : latest.data();
        T* hl = h.data() + (size_t)l * B * d;
        m.block_forward(m.layers_[l], in, out, a, B, 1, 1, hl, some ? h_next.data() + (size_t)l * B * d : hl);
        spare = in;
        in = out;
      }
      if (c.layers == 0 && !some) {  // no block: the patch itself
        m.ops_.zero(latest.data(), (size_t)B * d);
        m.ops_.add(latest.data(), patch_a.data(), (size_t)B * d);
      }
      if (some) {
        m.ops_.copy_rows_where(latest.data(), (const A*)in, closes.data(), B, d, 1);
        m.ops_.copy_rows_where(h.data(), (const T*)h_next.data(), closes.data(), B, d, c.layers);
        return;
      }
      have_patch = true;
    }

    // logits = the head over the byte's context (the parallel forward's broadcast over a one-byte window, then the
    // local blocks from a zero state at a patch's first byte).
    void unpool_step(const A* e, bool patch_starts) {
      const ModelConfig& c = m.config_;
      const T* W = m.W();
      if (m.patching_ == Patching::entropy)
        m.ops_.patch_entropy_broadcast_forward(up.data(), latest.data(), W + m.start_, e, one, d);
      else  // with P = 1 byte 0 reads patch 0 (the latest output); with P = 2 none is complete yet: it reads start
        m.ops_.patch_broadcast_forward(up.data(), latest.data(), W + m.start_, e, B, 1, have_patch ? 1 : 2, d);
      A *in = up.data(), *spare = local_spare.data();
      if (patch_starts && !m.local_.empty()) m.ops_.zero(h_local.data(), m.local_.size() * B * d);
      Acts a = Acts::carve(acts.data(), stats.data(), B, d, Ops::hidden_stride(c.hidden()));
      for (size_t l = 0; l < m.local_.size(); l++) {
        T* hl = h_local.data() + l * B * d;
        m.block_forward(m.local_[l], in, spare, a, B, 1, 1, hl, hl);
        std::swap(in, spare);
      }
      m.output_forward(logits.data(), z.data(), zstat.data(), in, B);
    }
  };

  template <class, class>
  friend class SsmModel;

  Patching patching_;
  size_t emb_, start_, lnf_w_, lnf_b_, head_;
  size_t query_ = 0;                        // patch.query, the attention pooling's learned query (attn)
  size_t boundary_w_ = 0, boundary_c_ = 0;  // the soft boundary score's weight [d] and bias [1] (soft)
  size_t bigram_ = 0;                       // the bigram table whose entropy places the boundaries (entropy)
  std::vector<Layer> layers_;
  std::vector<Layer> local_;  // the byte-rate blocks (local)
  int batch_ = 0, seq_ = 0;
  size_t capacity_N_ = 0, capacity_M_ = 0;
  typename Ops::template Buffer<uint8_t> x_, y_;
  typename Ops::template Buffer<A> e_, up_, z_, logits_, bufA_, bufB_, stream_, acts_, dp_, dtmp_, scratch_;
  typename Ops::template Buffer<A> local_stream_, local_acts_;  // the local blocks' outputs and activations
  typename Ops::template Buffer<T> soft_n_, soft_z_, soft_keep_;  // the soft pooling's scan (soft)
  typename Ops::template Buffer<T> zstat_, loss_, stats_, local_stats_;
  typename Ops::template Buffer<T> bigram_loss_;  // the bigram table's loss at each byte (entropy)
  typename Ops::template Buffer<T> pool_weights_;  // the attention pooling's softmax weights (attn)
  typename Ops::Patches patches_;  // where the last forward's patches lie (entropy)
};

}  // namespace

int64_t ssm_param_count(const ModelConfig& c) {
  int64_t d = c.d, H = c.hidden();
  int64_t block = 4 * d + 2 * d * d + 2 * d + 3 * d * H;  // two LayerNorms, W_in, W_out, decay, D, SwiGLU
  int64_t patching = 0;
  switch (patching_of(c.patching)) {
    case Patching::attn: patching = d; break;                     // patch.query
    case Patching::soft: patching = d + 1; break;                 // patch.boundary weight and bias
    case Patching::entropy: patching = 256 * 256; break;          // patch.bigram
    case Patching::local: patching = kLocalBlocks * block; break;  // local.*
    case Patching::mean: break;
  }
  return 256 * d + d + patching + c.layers * block + 2 * d + 256 * d;
}

int ssm_byte_rate_blocks(const ModelConfig& c) { return patching_of(c.patching) == Patching::local ? kLocalBlocks : 0; }

template <class T>
std::unique_ptr<Model<T>> make_ssm_model(const ModelConfig& config, uint64_t seed) {
  return std::make_unique<SsmModel<T, CpuOps>>(config, seed);
}

#ifdef BYTELM_WITH_CUDA
std::unique_ptr<Model<float>> make_ssm_model_cuda(const ModelConfig& config, uint64_t seed, const std::string& gemm) {
  if (gemm == "bf16") return std::make_unique<SsmModel<float, CudaOps<bf16>>>(config, seed, GemmPrecision::bf16);
  GemmPrecision p = gemm == "fp32" ? GemmPrecision::fp32 : GemmPrecision::tf32;
  return std::make_unique<SsmModel<float, CudaOps<float>>>(config, seed, p);
}
#endif

template std::unique_ptr<Model<float>> make_ssm_model<float>(const ModelConfig&, uint64_t);
template std::unique_ptr<Model<double>> make_ssm_model<double>(const ModelConfig&, uint64_t);

}  // namespace bytelm
