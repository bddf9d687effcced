#include "models/ssm.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"
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

// One composition for every backend: Ops (cpu_ops.h, cuda_ops.h) supplies the
// buffers and the layer calls, OpsModel the device copies of the parameters
// (ops_model.h). Activations are stored as A = Ops::Act<T> (T on the CPU, bf16
// on the GPU's fast path), and the matrix products read their weights as A (WA()).
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
  SsmModel(const ModelConfig& config, uint64_t seed, OpsArgs... ops_args) : OpsModel<T, Ops>(ops_args...) {
    this->config_ = config;
    int d = config.d, H = config.hidden();
    emb_ = this->add_param("embed.weight", {256, d});
    start_ = this->add_param("start", {d});
    if (attn_pooling()) query_ = this->add_param("patch.query", {d});
    for (int l = 0; l < config.layers; l++) {
      std::string p = "blocks." + std::to_string(l) + ".";
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
      layers_.push_back(L);
    }
    lnf_w_ = this->add_param("norm.weight", {d});
    lnf_b_ = this->add_param("norm.bias", {d});
    head_ = this->add_param("head.weight", {256, d});
    this->allocate();
    init(seed);
    this->place_params();
  }

  T forward(const uint8_t* x, const uint8_t* y, int B, int T_, T* row_loss) override {
    const ModelConfig& c = this->config_;
    int d = c.d, P = c.patch, N = B * T_, M = B * patch_count(T_, P);
    ensure(B, T_);
    const uint8_t* xd = ops_.put_bytes(x_, x, N);
    const uint8_t* yd = ops_.put_bytes(y_, y, N);
    const T* W = this->W();
    ops_.embedding_forward(e_.data(), xd, W + emb_, N, d);
    pool_forward(stream_at(0), pool_weights_.data(), e_.data(), B, T_);
    if (M > 0)
      for (int l = 0; l < c.layers; l++) block_forward(l, stream_at(l), stream_at(l + 1), acts(l), B, T_ / P, nullptr, nullptr);
    ops_.patch_broadcast_forward(up_.data(), stream_at(c.layers), W + start_, e_.data(), B, T_, P, d);
    output_forward(logits_.data(), z_.data(), zstat_.data(), up_.data(), N);
    ops_.cross_entropy(loss_.data(), (A*)nullptr, logits_.data(), yd, N, T(0));
    return this->last_loss_ = ops_.mean_loss(loss_.data(), N, row_loss);
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
    ops_.layernorm_backward(bufB_.data(), G + lnf_w_, G + lnf_b_, dz, up_.data(), zstat_.data(), zstat_.data() + N,
                            W + lnf_w_, N, d, false);
    A* de = bufA_.data();
    ops_.patch_broadcast_backward(dp_.data(), G + start_, de, bufB_.data(), B, seq_, P, d);
    if (M > 0)
      for (int l = c.layers - 1; l >= 0; l--) block_backward(l, stream_at(l), acts(l), B, seq_ / P);
    pool_backward(de, dp_.data(), B, seq_);
    ops_.embedding_backward(G + emb_, de, x_.data(), N, d);
  }

  // B streams on the model's own device, through the same layer code as the parallel forward (Streams below).
  std::unique_ptr<ByteStreams<T>> make_streams(int B) const override {
    if (B < 1) throw Error("make_streams needs at least one stream");
    return std::make_unique<Streams>(*this, B);
  }
  std::unique_ptr<ByteStream<T>> make_stream() const override { return single_stream(make_streams(1)); }

 private:
  struct Layer {
    size_t ln1_w, ln1_b, w_in, lam, w_out, D, ln2_w, ln2_b, w12, w3;
  };

  // Small GPT-style init: unit-variance embeddings, 1/sqrt(fan_in) matrices,
  // residual output projections scaled down by sqrt(2 L), a quiet head so the
  // first loss is near ln 256. patch.query stays zero: attention pooling starts as the mean.
  void init(uint64_t seed) {
    const ModelConfig& c = this->config_;
    Rng rng(seed);
    auto normal = [&](size_t off, size_t n, double std) { this->init_normal(rng, off, n, std); };
    auto fill = [&](size_t off, size_t n, double v) { this->init_fill(off, n, v); };
    T* W = this->params_.data();  // for the layers' own initialisers
    int d = c.d, H = c.hidden();
    double out_scale = 1.0 / std::sqrt(2.0 * c.layers);
    normal(emb_, 256 * (size_t)d, 1.0);
    for (const Layer& L : layers_) {
      fill(L.ln1_w, d, 1);
      fill(L.ln2_w, d, 1);
      normal(L.w_in, (size_t)d * d, 1 / std::sqrt(double(d)));
      diag_ssm_init_decay(W + L.lam, d, c.patch);
      normal(L.w_out, (size_t)d * d, out_scale / std::sqrt(double(d)));
      fill(L.D, d, 1);
      normal(L.w12, (size_t)2 * H * d, 1 / std::sqrt(double(d)));
      normal(L.w3, (size_t)d * H, out_scale / std::sqrt(double(H)));
    }
    fill(lnf_w_, d, 1);
    normal(head_, 256 * (size_t)d, 0.1 / std::sqrt(double(d)));
  }

  void ensure(int B, int seq) {
    batch_ = B;
    seq_ = seq;
    const ModelConfig& c = this->config_;
    size_t N = (size_t)B * seq, M = (size_t)B * patch_count(seq, c.patch), d = c.d, S = Ops::hidden_stride(c.hidden());
    if (N <= capacity_N_ && M <= capacity_M_) return;
    capacity_N_ = N;
    capacity_M_ = M;
    for (auto* b : {&e_, &up_, &z_, &bufA_, &bufB_}) Ops::resize(*b, N * d);
    Ops::resize(zstat_, 2 * N);
    Ops::resize(logits_, N * 256);
    Ops::resize(loss_, N);
    Ops::resize(stream_, (c.layers + 1) * M * d);
    Ops::resize(acts_, c.layers * Acts::rows_size(M, c.d, S));
    Ops::resize(stats_, c.layers * Acts::stats_size(M));
    Ops::resize(dp_, M * d);
    Ops::resize(pool_weights_, attn_pooling() ? M * c.patch : 0);
    Ops::resize(dtmp_, M * d);
    Ops::resize(scratch_, M * std::max(3 * S, d));
  }

  // Residual stream entering block l (l = layers: the output of the last block).
  using Acts = BlockActs<T, A>;
  A* stream_at(int l) { return stream_.data() + (size_t)l * capacity_M_ * this->config_.d; }
  Acts acts(int l) {
    int d = this->config_.d, S = Ops::hidden_stride(this->config_.hidden());
    return Acts::carve(acts_.data() + l * Acts::rows_size(capacity_M_, d, S),
                       stats_.data() + l * Acts::stats_size(capacity_M_), capacity_M_, d, S);
  }

  bool attn_pooling() const { return this->config_.patching == "attn"; }

  // p [B, T_/P, d] = the pool of each complete patch of e [B, T_, d]: by attention (weights [B, T_/P, P] kept
  // for the backward) or the mean. Patching "none" is patch 1, where the mean of one byte is that byte.
  void pool_forward(A* p, T* weights, const A* e, int B, int T_) const {
    const ModelConfig& c = this->config_;
    if (attn_pooling()) return ops_.patch_attn_forward(p, weights, e, W() + query_, B, T_, c.patch, c.d);
    ops_.patch_mean_forward(p, e, B, T_, c.patch, c.d);
  }

  // de += d(loss)/de from dp = d(loss)/dp, for the last forward's pooling (and the query's gradient for attn).
  void pool_backward(A* de, const A* dp, int B, int T_) {
    const ModelConfig& c = this->config_;
    if (attn_pooling())
      return ops_.patch_attn_backward(de, G() + query_, dp, e_.data(), W() + query_, pool_weights_.data(), B, T_,
                                      c.patch, c.d);
    ops_.patch_mean_backward(de, dp, B, T_, c.patch, c.d);
  }

  DiagSsmWeights<T, A> ssm_weights(const Layer& L) const {
    const T* W = this->W();
    const A* WA = this->WA();
    return {WA + L.w_in, W + L.lam, WA + L.w_out, W + L.D};
  }

  // out = q + SwiGLU(LN2(q)), q = in + DiagSSM(LN1(in)), over B sequences of Tp patches.
  // h0 ([B, d] or null) is the SSM state before the first patch; h_last ([B, d] or null, may be h0) receives
  // the state after the last one.
  void block_forward(int l, const A* in, A* out, Acts a, int B, int Tp, const T* h0, T* h_last) const {
    const Layer& L = layers_[l];
    const T* W = this->W();
    int d = this->config_.d, H = this->config_.hidden(), M = B * Tp;
    ops_.layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, in, W + L.ln1_w, W + L.ln1_b, M, d);
    ops_.diag_ssm_forward(a.q, a.u, a.h, a.ln1, ssm_weights(L), B, Tp, d, h0, h_last, in);
    ops_.layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.q, W + L.ln2_w, W + L.ln2_b, M, d);
    ops_.swiglu_forward(out, a.g, a.m, a.ln2, WA() + L.w12, WA() + L.w3, M, d, H);
    ops_.add(out, a.q, (size_t)M * d);
  }

  // dp_ holds d(loss)/d(out) on entry and d(loss)/d(in) on return.
  void block_backward(int l, const A* in, Acts a, int B, int Tp) {
    const Layer& L = layers_[l];
    const T* W = this->W();
    T* G = this->G();
    int d = this->config_.d, H = this->config_.hidden(), M = B * Tp;
    A* dp = dp_.data();
    A* dtmp = dtmp_.data();
    ops_.swiglu_backward(dtmp, G + L.w12, G + L.w3, dp, a.ln2, a.g, a.m, WA() + L.w12, WA() + L.w3, M, d, H,
                         scratch_.data());
    ops_.layernorm_backward(dp, G + L.ln2_w, G + L.ln2_b, dtmp, a.q, a.ln2_mean, a.ln2_rstd, W + L.ln2_w, M, d, true);
    DiagSsmGrads<T> g{G + L.w_in, G + L.lam, G + L.w_out, G + L.D};
    ops_.diag_ssm_backward(dtmp, g, dp, a.ln1, a.u, a.h, ssm_weights(L), B, Tp, d, scratch_.data());
    ops_.layernorm_backward(dp, G + L.ln1_w, G + L.ln1_b, dtmp, in, a.ln1_mean, a.ln1_rstd, W + L.ln1_w, M, d, true);
  }

  // logits [N, 256] = Head(LN(up)); z [N, d] and zstat (mean [N], rstd [N]) kept for the backward.
  void output_forward(A* logits, A* z, T* zstat, const A* up, int N) const {
    const T* W = this->W();
    int d = this->config_.d;
    ops_.layernorm_forward(z, zstat, zstat + N, up, W + lnf_w_, W + lnf_b_, N, d);
    ops_.linear_forward(logits, z, WA() + head_, N, d, 256);
  }

  // Streaming: B streams stepped together, one patch at a time through the same layer code as the parallel
  // forward (at Tp = 1, the SSM states passed in as h0 and taken back as h_last, in fp32). State: per layer and
  // stream the SSM state, the embeddings of the open patch's bytes, and the latest complete patch's output.
  // The open patch is stored slot-major, [P][B][d], so one byte's embeddings land in one contiguous slot and
  // the P slots of all B streams mean-pool as one sequence of P rows of width B d. Attention pooling scores each
  // stream's bytes on their own, so it pools a stream-major copy, [B][P][d] (open_by_stream).
  struct Streams final : ByteStreams<T> {
    const SsmModel& m;
    int B, d, P, count = 0;
    bool have_patch = false;  // before the first complete patch, bytes read the learned start vector
    typename Ops::template Buffer<uint8_t> bytes;
    typename Ops::template Buffer<T> h, zstat, stats, pool_weights;  // h: [layers][B][d]
    typename Ops::template Buffer<A> open, open_by_stream, patch_a, patch_b, latest, up, z, logits, acts;
    Streams(const SsmModel& model, int streams) : m(model), B(streams) {
      const ModelConfig& c = m.config_;
      d = c.d;
      P = c.patch;
      int S = Ops::hidden_stride(c.hidden());
      Ops::resize(h, (size_t)c.layers * B * d);
      for (auto* buf : {&patch_a, &patch_b, &latest, &up, &z}) Ops::resize(*buf, (size_t)B * d);
      Ops::resize(open, (size_t)P * B * d);
      Ops::resize(open_by_stream, m.attn_pooling() ? (size_t)B * P * d : 0);
      Ops::resize(pool_weights, m.attn_pooling() ? (size_t)B * P : 0);
      Ops::resize(logits, (size_t)B * 256);
      Ops::resize(zstat, 2 * (size_t)B);
      Ops::resize(acts, Acts::rows_size(B, d, S));
      Ops::resize(stats, Acts::stats_size(B));
    }
    void step(const uint8_t* bytes_host, T* logits_host) override {
      const ModelConfig& c = m.config_;
      const T* W = m.W();
      const uint8_t* x = m.ops_.put_bytes(bytes, bytes_host, B);
      A* e = open.data() + (size_t)count * B * d;
      m.ops_.embedding_forward(e, x, W + m.emb_, B, d);
      if (++count == P) {
        pool_open_patch();
        Acts a = Acts::carve(acts.data(), stats.data(), B, d, Ops::hidden_stride(c.hidden()));
        A *in = patch_a.data(), *spare = patch_b.data();
        for (int l = 0; l < c.layers; l++) {
          A* out = l == c.layers - 1 ? latest.data() : spare;
          T* hl = h.data() + (size_t)l * B * d;
          m.block_forward(l, in, out, a, B, 1, hl, hl);
          spare = in;
          in = out;
        }
        have_patch = true;
        count = 0;
      }
      // The byte's input to the head is the parallel forward's broadcast over a one-byte window: with P = 1
      // byte 0 reads patch 0 (the latest output), with P = 2 no patch is complete yet and it reads start.
      m.ops_.patch_broadcast_forward(up.data(), latest.data(), W + m.start_, e, B, 1, have_patch ? 1 : 2, d);
      m.output_forward(logits.data(), z.data(), zstat.data(), up.data(), B);
      m.ops_.copy_to_host(logits_host, logits.data(), (size_t)B * 256);
    }
    // patch_a [B, d] = the pool of every stream's open patch, now complete.
    void pool_open_patch() {
      if (m.attn_pooling()) {
        for (int r = 0; r < P; r++)  // slot r of every stream: B rows of d, from [r][B][d] to [B][P][d]
          m.ops_.copy_rows(open_by_stream.data() + (size_t)r * d, (size_t)P * d, open.data() + (size_t)r * B * d, d, d,
                           B);
        return m.pool_forward(patch_a.data(), pool_weights.data(), open_by_stream.data(), B, P);
      }
      m.ops_.patch_mean_forward(patch_a.data(), open.data(), 1, P, P, B * d);
    }
  };

  template <class, class>
  friend class SsmModel;

  size_t emb_, start_, lnf_w_, lnf_b_, head_;
  size_t query_ = 0;  // patch.query, the attention pooling's learned query (patching attn only)
  std::vector<Layer> layers_;
  int batch_ = 0, seq_ = 0;
  size_t capacity_N_ = 0, capacity_M_ = 0;
  typename Ops::template Buffer<uint8_t> x_, y_;
  typename Ops::template Buffer<A> e_, up_, z_, logits_, bufA_, bufB_, stream_, acts_, dp_, dtmp_, scratch_;
  typename Ops::template Buffer<T> zstat_, loss_, stats_;
  typename Ops::template Buffer<T> pool_weights_;  // the attention pooling's softmax weights (patching attn only)
};

}  // namespace

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
