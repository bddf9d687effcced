#include "models/transformer.h"

#include <cmath>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "models/cpu_ops.h"
#include "models/ops_model.h"
#ifdef BYTELM_WITH_CUDA
#include "core/bf16.h"
#include "models/cuda_ops.h"
#endif

namespace bytelm {

char transformer_mixer(const ModelConfig& c, int layer) { return c.arch == "hybrid" ? c.hybrid_layers[layer] : 'a'; }

void check_transformer_config(const ModelConfig& c) {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw Error(msg);
  };
  auto flag = [&](int v, const char* key) {
    need(v == 0 || v == 1, std::string(key) + " must be 0 or 1, got " + std::to_string(v));
  };
  std::string family = "the " + c.arch + " family reads every byte: ";
  need(c.patch == 1, family + "patch must be 1, got " + std::to_string(c.patch));
  need(c.patching != "attn", family + "patching attn does not apply to it");
  need(c.head_dim >= 2 && c.head_dim % 2 == 0,
       "head_dim must be even and >= 2 (RoPE rotates pairs of channels), got " + std::to_string(c.head_dim));
  need(c.d % c.head_dim == 0,
       "d must be a multiple of head_dim: d " + std::to_string(c.d) + ", head_dim " + std::to_string(c.head_dim));
  need(c.context >= 1 && c.context <= (1 << 20), "context must be in 1..1048576, got " + std::to_string(c.context));
  flag(c.rope, "rope");
  flag(c.tie_embeddings, "tie_embeddings");
  flag(c.smear, "smear");
  flag(c.unet, "unet");
  need(c.softcap >= 0 && std::isfinite(c.softcap), "softcap must be >= 0 (0 turns it off)");
  need(c.mlp_leak >= 0 && c.mlp_leak <= 1, "mlp_leak must be in [0, 1]");
  need(c.bigram_buckets >= 0 && c.bigram_buckets <= (1 << 20),
       "bigram_buckets must be in 0..1048576 (0 turns the bigram embedding off), got " +
           std::to_string(c.bigram_buckets));
  need(c.bigram_buckets == 0 || (c.bigram_dim >= 1 && c.bigram_dim <= 4096),
       "bigram_dim must be in 1..4096, got " + std::to_string(c.bigram_dim));
  if (c.arch == "hybrid") {
    need((int)c.hybrid_layers.size() == c.layers,
         "hybrid_layers must give one letter a layer ('a' attention, 's' long convolution): '" + c.hybrid_layers +
             "' has " + std::to_string(c.hybrid_layers.size()) + " for " + std::to_string(c.layers) + " layers");
    for (char k : c.hybrid_layers)
      need(k == 'a' || k == 's',
           "hybrid_layers takes the letters a (attention) and s (long convolution), got '" + c.hybrid_layers + "'");
    need(c.conv_len >= 1 && c.conv_len <= 65536, "conv_len must be in 1..65536, got " + std::to_string(c.conv_len));
  } else {
    need(c.hybrid_layers.empty(), "hybrid_layers applies to the hybrid family only");
  }
}

int64_t transformer_param_count(const ModelConfig& c) {
  TransformerDims m(c);
  int64_t d = m.d, H = m.hidden, total = 256 * d;  // the embedding
  if (c.bigram_buckets > 0) total += (int64_t)c.bigram_buckets * c.bigram_dim + d * c.bigram_dim;
  if (c.smear) total += m.smear_width + 1;
  for (int l = 0; l < c.layers; l++) {
    total += 4 * d + 2 * d * H;                                                         // two LayerNorms, the MLP
    total += transformer_mixer(c, l) == 'a' ? 4 * d * d                                 // qkv, out projection
                                            : 3 * d * d + d * (int64_t)c.conv_len + d;  // in, out, kernel, bias
  }
  total += m.skips + 2 * d;  // skip weights, final norm
  if (!c.tie_embeddings) total += 256 * d;
  return total;
}

namespace {

// One block's activations over N rows (pointers carved from two buffers of the capacity's size): rows in the
// backend's activation type A, LayerNorm statistics and the attention's log-sum-exp in T.
template <class T, class A>
struct BlockActs {
  A *ln1, *mix, *mixed, *mid, *ln2, *h, *a;
  // mix holds the mixer's inner rows, 3d wide: attention's packed [q | k | v] (RoPE applied); the long
  // convolution's v, z and conv output c as three dense [N, d] arrays (v, z, c point into it).
  A *v, *z, *c;
  // mixed: what the mixer's output projection reads (attention output; c * silu(z)).
  T *ln1_mean, *ln1_rstd, *ln2_mean, *ln2_rstd, *lse;
  static size_t rows_size(size_t N, const TransformerDims& m) {
    auto n = [](size_t k) { return aligned16_count<A>(k); };
    return 5 * n(N * m.d) + n(3 * N * m.d) + 2 * n(N * m.hidden);
  }
  static size_t stats_size(size_t N, const TransformerDims& m) { return N * (4 + (size_t)m.heads); }
  static BlockActs carve(A* rows, T* stats, size_t N, const TransformerDims& m) {
    BlockActs a;
    size_t d = m.d;
    auto take = [&](size_t n) { return take_aligned16(rows, n); };
    a.ln1 = take(N * d);
    a.mix = take(3 * N * d);
    a.mixed = take(N * d);
    a.mid = take(N * d);
    a.ln2 = take(N * d);
    a.h = take(N * m.hidden);
    a.a = take(N * m.hidden);
    a.v = a.mix;
    a.z = a.mix + N * d;
    a.c = a.mix + 2 * N * d;
    a.ln1_mean = stats;
    a.ln1_rstd = stats + N;
    a.ln2_mean = stats + 2 * N;
    a.ln2_rstd = stats + 3 * N;
    a.lse = stats + 4 * N;
    return a;
  }
};

// One composition for every backend, as MambaModel: Ops supplies the buffers and the layer calls; OpsModel the
// device copies of the parameters (see ops_model.h). The matrix products read their weights as A (WA()); the
// norms, embeddings, the SmearGate, the skips and the convolution read the fp32 parameters (W()).
template <class T, class Ops>
class TransformerModel final : public OpsModel<T, Ops> {
  using A = typename OpsModel<T, Ops>::A;
  using OpsModel<T, Ops>::ops_;
  using OpsModel<T, Ops>::W;
  using OpsModel<T, Ops>::WA;
  using OpsModel<T, Ops>::G;
  template <class U>
  using Buffer = typename Ops::template Buffer<U>;
  using Acts = BlockActs<T, A>;

 public:
  template <class... OpsArgs>
  TransformerModel(const ModelConfig& config, uint64_t seed, OpsArgs... ops_args)
      : OpsModel<T, Ops>(ops_args...), dims_(config) {
    this->config_ = config;
    const ModelConfig& c = config;
    int d = dims_.d, H = dims_.hidden;
    emb_ = this->add_param("embed.weight", {256, d});
    if (bigram()) {
      bigram_table_ = this->add_param("bigram.table", {c.bigram_buckets, c.bigram_dim});
      bigram_proj_ = this->add_param("bigram.proj.weight", {d, c.bigram_dim});
    }
    if (c.smear) {
      smear_w_ = this->add_param("smear.gate.weight", {dims_.smear_width});
      smear_lambda_ = this->add_param("smear.lambda", {1});
    }
    for (int l = 0; l < c.layers; l++) {
      std::string p = "blocks." + std::to_string(l) + ".";
      Layer L;
      L.mixer = transformer_mixer(c, l);
      L.ln1_w = this->add_param(p + "norm1.weight", {d});
      L.ln1_b = this->add_param(p + "norm1.bias", {d});
      if (L.mixer == 'a') {
        L.w_in = this->add_param(p + "attn.qkv.weight", {3 * d, d});
        L.w_out = this->add_param(p + "attn.proj.weight", {d, d});
      } else {
        L.w_in = this->add_param(p + "conv.in.weight", {2 * d, d});  // the rows making v, then those making z
        // a matrix, but of decays: exempt from weight decay as mamba's A_log is
        L.kernel = this->add_param(p + "conv.kernel", {d, c.conv_len}, false);
        L.bias = this->add_param(p + "conv.bias", {d});
        L.w_out = this->add_param(p + "conv.out.weight", {d, d});
      }
      L.ln2_w = this->add_param(p + "norm2.weight", {d});
      L.ln2_b = this->add_param(p + "norm2.bias", {d});
      L.fc = this->add_param(p + "mlp.fc.weight", {H, d});
      L.fc2 = this->add_param(p + "mlp.proj.weight", {d, H});
      layers_.push_back(L);
    }
    if (dims_.skips > 0) skip_ = this->add_param("skip.weight", {dims_.skips});
    lnf_w_ = this->add_param("norm.weight", {d});
    lnf_b_ = this->add_param("norm.bias", {d});
    head_ = c.tie_embeddings ? emb_ : this->add_param("head.weight", {256, d});
    this->allocate();
    init(seed);
    this->place_params();
  }

  T forward(const uint8_t* x, const uint8_t* y, int B, int T_, T* row_loss) override {
    int N = B * T_;
    ensure(B, T_);
    const uint8_t* xs = ops_.put_bytes(x_, x, N);
    const uint8_t* ys = ops_.put_bytes(y_, y, N);
    embed_forward(stream_at(0), e_.data(), bigram_rows_.data(), smear_gate_.data(), xs, B, T_, nullptr, nullptr);
    stack_forward([&](int l) { return stream_at(l); }, [&](int l) { return acts(l); }, B, T_, nullptr);
    output_forward(logits_.data(), raw_logits_.data(), z_.data(), zstat_.data(), stream_at(dims_.layers), N);
    ops_.cross_entropy(loss_.data(), (A*)nullptr, logits_.data(), ys, N, T(0));
    return this->last_loss_ = ops_.mean_loss(loss_.data(), N, row_loss);
  }

  void backward() override {
    const ModelConfig& c = this->config_;
    int B = batch_, T_ = seq_, N = B * T_, d = dims_.d, L = dims_.layers;
    const T* W = this->W();
    T* G = this->G();
    A* dlogits = logits_.data();  // the capped logits are not needed again: reuse in place
    ops_.cross_entropy(loss_.data(), dlogits, logits_.data(), y_.data(), N, T(1) / N);
    if (c.softcap > 0) ops_.softcap_backward(dlogits, dlogits, raw_logits_.data(), (size_t)N * 256, T(c.softcap));
    A* dz = dln_.data();
    ops_.linear_backward(dz, G + head_, dlogits, z_.data(), WA() + head_, N, d, 256, false);
    ops_.layernorm_backward(dstream_.data(), G + lnf_w_, G + lnf_b_, dz, stream_at(L), zstat_.data(), zstat_.data() + N,
                            W + lnf_w_, N, d, false);
    for (int l = L - 1; l >= 0; l--) {
      if (int i = skip_source(l); i >= 0)  // the skip's share, added to block i's input gradient when we get there
        ops_.scaled_add_backward(skip_grad(i), G + skip_ + i, dstream_.data(), stream_at(i), W + skip_ + i,
                                 (size_t)N * d);
      block_backward(l, stream_at(l), acts(l), B, T_);
      if (l < dims_.skips) ops_.add(dstream_.data(), skip_grad(l), (size_t)N * d);
    }
    embed_backward(dstream_.data(), B, T_);
  }

  std::unique_ptr<ByteStreams<T>> make_streams(int B) const override {
    if (B < 1) throw Error("make_streams needs at least one stream");
    return std::make_unique<Streams>(*this, B);
  }

 private:
  // Offsets of one block's tensors. w_in: attention's qkv [3d, d] or the convolution's in-projection [2d, d];
  // w_out: the mixer's output projection [d, d]; kernel and bias: the long convolution's only.
  struct Layer {
    char mixer;
    size_t ln1_w, ln1_b, w_in, w_out, kernel = 0, bias = 0, ln2_w, ln2_b, fc, fc2;
  };

  // A stream's state for the block code at T = 1: the position of the step, and per layer the key/value cache
  // (attention, [B, context, d] each, of A) or the convolution's last conv_len - 1 inputs ([B, conv_len - 1, d],
  // of T: fp32 on the GPU).
  struct StepState {
    int pos = 0;
    std::vector<A*> keys, values;
    std::vector<T*> conv;
  };

  bool bigram() const { return this->config_.bigram_buckets > 0; }

  // Matrices at 1/sqrt(fan_in), with the residual output projections scaled down by sqrt(2 L) (as the other
  // families); the long convolution's output projection at zero, so a hybrid's convolution blocks start as the
  // identity. The embedding is also the head (by default): at std 0.5/sqrt(d) the first logits of a
  // unit-variance LN output have std 0.5, so the first loss is near ln 256. The bigram table is unit normal and
  // its projection zero, the SmearGate's weights zero (it starts as the identity), the skip weights 1.
  void init(uint64_t seed) {
    const ModelConfig& c = this->config_;
    Rng rng(seed);
    auto normal = [&](size_t off, size_t n, double std) { this->init_normal(rng, off, n, std); };
    auto fill = [&](size_t off, size_t n, double v) { this->init_fill(off, n, v); };
    size_t d = dims_.d, H = dims_.hidden;
    double out_scale = 1.0 / std::sqrt(2.0 * std::max(1, c.layers));
    normal(emb_, 256 * d, 0.5 / std::sqrt(double(d)));
    if (!c.tie_embeddings) normal(head_, 256 * d, 0.5 / std::sqrt(double(d)));
    if (bigram()) normal(bigram_table_, (size_t)c.bigram_buckets * c.bigram_dim, 1.0);
    for (const Layer& L : layers_) {
      fill(L.ln1_w, d, 1);
      fill(L.ln2_w, d, 1);
      if (L.mixer == 'a') {
        normal(L.w_in, 3 * d * d, 1 / std::sqrt(double(d)));
        normal(L.w_out, d * d, out_scale / std::sqrt(double(d)));
      } else {
        normal(L.w_in, 2 * d * d, 1 / std::sqrt(double(d)));
        causal_conv_init_s4d_lin(this->params_.data() + L.kernel, (int)d, c.conv_len, 4, rng);
      }
      normal(L.fc, H * d, 1 / std::sqrt(double(d)));
      normal(L.fc2, d * H, out_scale / std::sqrt(double(H)));
    }
    if (dims_.skips > 0) fill(skip_, dims_.skips, 1);
    fill(lnf_w_, d, 1);
  }

  void ensure(int B, int seq) {
    batch_ = B;
    seq_ = seq;
    size_t N = (size_t)B * seq, d = dims_.d, L = dims_.layers;
    if (N <= capacity_) return;
    capacity_ = N;
    for (auto* b : {&e_, &z_, &dstream_, &dln_, &dmixed_, &dtmp_}) Ops::resize(*b, N * d);
    Ops::resize(stream_, (L + 1) * N * d);
    Ops::resize(acts_, L * Acts::rows_size(N, dims_));
    Ops::resize(stats_, L * Acts::stats_size(N, dims_));
    Ops::resize(bigram_rows_, bigram() ? N * this->config_.bigram_dim : 0);
    Ops::resize(dbigram_, bigram() ? N * this->config_.bigram_dim : 0);
    Ops::resize(smear_gate_, N);
    Ops::resize(zstat_, 2 * N);
    Ops::resize(logits_, N * 256);
    Ops::resize(raw_logits_, this->config_.softcap > 0 ? N * 256 : 0);
    Ops::resize(loss_, N);
    Ops::resize(dmix_, 3 * N * d);
    Ops::resize(mlp_scratch_, N * dims_.hidden);
    Ops::resize(delta_, N * dims_.heads);
    Ops::resize(skip_grads_, dims_.skips * N * d);
  }

  // The residual stream entering block l (l = layers: leaving the last block), [N, d].
  A* stream_at(int l) { return stream_.data() + (size_t)l * capacity_ * dims_.d; }
  Acts acts(int l) {
    return Acts::carve(acts_.data() + l * Acts::rows_size(capacity_, dims_),
                       stats_.data() + l * Acts::stats_size(capacity_, dims_), capacity_, dims_);
  }
  A* skip_grad(int i) { return skip_grads_.data() + (size_t)i * capacity_ * dims_.d; }

  // The U-Net skip into the output of block l: from the input of block L-1-l, for the last `skips` blocks; else -1.
  int skip_source(int l) const { return l >= dims_.layers - dims_.skips ? dims_.layers - 1 - l : -1; }

  // r [B, T_, d] = SmearGate(Embed(x) + Proj(Bigram(x))). e keeps the un-smeared rows and gate the SmearGate's
  // gates, for the backward; bigram [B, T_, bigram_dim] the table rows. prev_bytes and prev_e (or null: the
  // window starts the sequence) are each row's byte and un-smeared row before position 0, for streams.
  void embed_forward(A* r, A* e, A* bigram_rows, T* gate, const uint8_t* x, int B, int T_, const uint8_t* prev_bytes,
                     const A* prev_e) const {
    const ModelConfig& c = this->config_;
    const T* W = this->W();
    int N = B * T_, d = dims_.d;
    A* x0 = c.smear ? e : r;
    ops_.embedding_forward(x0, x, W + emb_, N, d);
    if (bigram()) {
      A* projected = c.smear ? r : e;  // whichever of the two is free until the SmearGate
      ops_.bigram_forward(bigram_rows, x, W + bigram_table_, B, T_, c.bigram_buckets, c.bigram_dim, prev_bytes);
      ops_.linear_forward(projected, bigram_rows, WA() + bigram_proj_, N, c.bigram_dim, d);
      ops_.add(x0, projected, (size_t)N * d);
    }
    if (c.smear) ops_.smear_forward(r, gate, e, W + smear_w_, W + smear_lambda_, B, T_, d, dims_.smear_width, prev_e);
  }

  // The gradients of the embedding, bigram and SmearGate parameters from dr = d(loss)/dr (of the last forward).
  void embed_backward(const A* dr, int B, int T_) {
    const ModelConfig& c = this->config_;
    const T* W = this->W();
    T* G = this->G();
    int N = B * T_, d = dims_.d;
    const A* dx0 = dr;
    if (c.smear) {
      ops_.smear_backward(dtmp_.data(), G + smear_w_, G + smear_lambda_, dr, e_.data(), smear_gate_.data(),
                          W + smear_w_, W + smear_lambda_, B, T_, d, dims_.smear_width);
      dx0 = dtmp_.data();
    }
    if (bigram()) {
      ops_.linear_backward(dbigram_.data(), G + bigram_proj_, dx0, bigram_rows_.data(), WA() + bigram_proj_, N,
                           c.bigram_dim, d, false);
      ops_.bigram_backward(G + bigram_table_, dbigram_.data(), x_.data(), B, T_, c.bigram_buckets, c.bigram_dim);
    }
    ops_.embedding_backward(G + emb_, dx0, x_.data(), N, d);
  }

  // The L blocks with their U-Net skips: stream(l) is block l's input, stream(l + 1) its output.
  template <class StreamAt, class ActsAt>
  void stack_forward(StreamAt stream, ActsAt acts_at, int B, int T_, StepState* step) const {
    const T* W = this->W();
    size_t n = (size_t)B * T_ * dims_.d;
    for (int l = 0; l < dims_.layers; l++) {
      block_forward(l, stream(l), stream(l + 1), acts_at(l), B, T_, step);
      if (int i = skip_source(l); i >= 0) ops_.scaled_add_forward(stream(l + 1), stream(i), W + skip_ + i, n);
    }
  }

  // out = mid + MLP(LN2(mid)), mid = in + Mixer(LN1(in)), over B rows of T_ positions. step (or null:
  // training) carries a stream's caches; with it T_ is 1.
  void block_forward(int l, const A* in, A* out, Acts a, int B, int T_, StepState* step) const {
    const ModelConfig& c = this->config_;
    const Layer& L = layers_[l];
    const T* W = this->W();
    const A* WA = this->WA();
    int N = B * T_, d = dims_.d;
    ops_.layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, in, W + L.ln1_w, W + L.ln1_b, N, d);
    if (L.mixer == 'a') {
      ops_.linear_forward(a.mix, a.ln1, WA + L.w_in, N, d, 3 * d);
      // q and k lie side by side in each packed row: one rotation of 2 * heads heads
      if (c.rope)
        ops_.rope_forward(a.mix, RopeShape{B, T_, 2 * dims_.heads, dims_.head_dim, 3 * d, step ? step->pos : 0});
      if (step)
        ops_.attention_decode(a.mixed, step->keys[l], step->values[l], a.mix, a.mix + d, a.mix + 2 * d, 3 * d, B,
                              dims_.heads, dims_.head_dim, c.context, step->pos, attention_scale());
      else
        ops_.attention_forward(a.mixed, a.lse, a.mix, a.mix + d, a.mix + 2 * d, attention_shape(B, T_),
                               attention_scale());
    } else {
      ops_.linear_forward(a.v, a.ln1, WA + L.w_in, N, d, d);
      ops_.linear_forward(a.z, a.ln1, WA + L.w_in + (size_t)d * d, N, d, d);
      ops_.causal_conv_forward(a.c, a.v, W + L.kernel, W + L.bias, B, T_, d, c.conv_len,
                               step ? step->conv[l] : nullptr);
      ops_.silu_gate_forward(a.mixed, a.c, a.z, (size_t)N * d);
    }
    ops_.linear_forward(a.mid, a.mixed, WA + L.w_out, N, d, d);
    ops_.add(a.mid, in, (size_t)N * d);
    ops_.layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.mid, W + L.ln2_w, W + L.ln2_b, N, d);
    ops_.mlp_forward(out, a.h, a.a, a.ln2, WA + L.fc, WA + L.fc2, N, d, dims_.hidden, T(c.mlp_leak));
    ops_.add(out, a.mid, (size_t)N * d);
  }

  // dstream_ holds d(loss)/d(out) on entry and d(loss)/d(in) on return.
  void block_backward(int l, const A* in, Acts a, int B, int T_) {
    const ModelConfig& c = this->config_;
    const Layer& L = layers_[l];
    const T* W = this->W();
    const A* WA = this->WA();
    T* G = this->G();
    int N = B * T_, d = dims_.d;
    A *dout = dstream_.data(), *dln = dln_.data(), *dmixed = dmixed_.data(), *dmix = dmix_.data();
    ops_.mlp_backward(dln, G + L.fc, G + L.fc2, dout, a.ln2, a.h, a.a, WA + L.fc, WA + L.fc2, N, d, dims_.hidden,
                      T(c.mlp_leak), mlp_scratch_.data());
    // dout becomes d/d(mid): out = mid + MLP(LN2(mid))
    ops_.layernorm_backward(dout, G + L.ln2_w, G + L.ln2_b, dln, a.mid, a.ln2_mean, a.ln2_rstd, W + L.ln2_w, N, d,
                            true);
    ops_.linear_backward(dmixed, G + L.w_out, dout, a.mixed, WA + L.w_out, N, d, d, false);
    if (L.mixer == 'a') {
      ops_.attention_backward(dmix, dmix + d, dmix + 2 * d, delta_.data(), dmixed, a.mix, a.mix + d, a.mix + 2 * d,
                              a.mixed, a.lse, attention_shape(B, T_), attention_scale());
      if (c.rope) ops_.rope_backward(dmix, RopeShape{B, T_, 2 * dims_.heads, dims_.head_dim, 3 * d, 0});
      ops_.linear_backward(dln, G + L.w_in, dmix, a.ln1, WA + L.w_in, N, d, 3 * d, false);
    } else {
      A *dv = dmix, *dz = dmix + capacity_ * d, *dc = dmix + 2 * capacity_ * d;
      ops_.silu_gate_backward(dc, dz, dmixed, a.c, a.z, (size_t)N * d);
      ops_.causal_conv_backward(dv, G + L.kernel, G + L.bias, dc, a.v, W + L.kernel, W + L.bias, B, T_, d, c.conv_len);
      ops_.linear_backward(dln, G + L.w_in, dv, a.ln1, WA + L.w_in, N, d, d, false);
      ops_.linear_backward(dln, G + L.w_in + (size_t)d * d, dz, a.ln1, WA + L.w_in + (size_t)d * d, N, d, d, true);
    }
    // dout becomes d/d(in): mid = in + Mixer(LN1(in))
    ops_.layernorm_backward(dout, G + L.ln1_w, G + L.ln1_b, dln, in, a.ln1_mean, a.ln1_rstd, W + L.ln1_w, N, d, true);
  }

  AttentionShape attention_shape(int B, int T_) const { return {B, T_, dims_.heads, dims_.head_dim, 3 * dims_.d}; }
  T attention_scale() const { return T(1 / std::sqrt(double(dims_.head_dim))); }

  // logits [N, 256] = softcap(LN(r) Head^T); z [N, d] and zstat (mean [N], rstd [N]) are kept for the backward,
  // and with the cap on, the uncapped logits in raw.
  void output_forward(A* logits, A* raw, A* z, T* zstat, const A* r, int N) const {
    const ModelConfig& c = this->config_;
    const T* W = this->W();
    int d = dims_.d;
    ops_.layernorm_forward(z, zstat, zstat + N, r, W + lnf_w_, W + lnf_b_, N, d);
    ops_.linear_forward(c.softcap > 0 ? raw : logits, z, this->WA() + head_, N, d, 256);
    if (c.softcap > 0) ops_.softcap_forward(logits, raw, (size_t)N * 256, T(c.softcap));
  }

  // B streams stepped together through the same code as the parallel forward at T = 1: the embedding with the
  // previous bytes and un-smeared rows, the blocks with their caches (StepState), the head.
  struct Streams final : ByteStreams<T> {
    const TransformerModel& m;
    int B;
    StepState state;
    bool started = false;
    Buffer<uint8_t> bytes, prev_bytes;
    Buffer<A> e, prev_e, bigram_rows, residual, acts, z, logits, raw, kv_caches;
    Buffer<T> gate, stats, zstat, conv_states;
    Streams(const TransformerModel& model, int streams) : m(model), B(streams) {
      const ModelConfig& c = m.config_;
      const TransformerDims& dims = m.dims_;
      size_t d = dims.d, L = dims.layers, rows = (size_t)B * d;
      for (auto* buf : {&e, &prev_e, &z}) Ops::resize(*buf, rows);
      Ops::resize(bigram_rows, m.bigram() ? (size_t)B * c.bigram_dim : 0);
      Ops::resize(gate, B);
      Ops::resize(residual, (L + 1) * rows);
      Ops::resize(acts, Acts::rows_size(B, dims));
      Ops::resize(stats, Acts::stats_size(B, dims));
      Ops::resize(zstat, 2 * (size_t)B);
      Ops::resize(logits, (size_t)B * 256);
      Ops::resize(raw, c.softcap > 0 ? (size_t)B * 256 : 0);
      // per attention layer keys and values of `context` positions; per convolution layer its last conv_len - 1
      // inputs
      size_t kv_size = 2 * (size_t)c.context * rows, conv_size = (size_t)(c.conv_len - 1) * rows, attention = 0;
      for (int l = 0; l < (int)L; l++) attention += m.layers_[l].mixer == 'a';
      Ops::resize(kv_caches, attention * kv_size);
      Ops::resize(conv_states, (L - attention) * conv_size);
      A* kv = kv_caches.data();
      T* conv = conv_states.data();
      for (int l = 0; l < (int)L; l++) {
        bool is_attention = m.layers_[l].mixer == 'a';
        state.keys.push_back(is_attention ? kv : nullptr);
        state.values.push_back(is_attention ? kv + kv_size / 2 : nullptr);
        state.conv.push_back(is_attention ? nullptr : conv);
        if (is_attention)
          kv += kv_size;
        else
          conv += conv_size;
      }
    }
    void step(const uint8_t* bytes_host, T* logits_host) override {
      size_t rows = (size_t)B * m.dims_.d;
      const uint8_t* x = m.ops_.put_bytes(bytes, bytes_host, B);
      A* r = residual.data();
      m.embed_forward(r, e.data(), bigram_rows.data(), gate.data(), x, B, 1, started ? prev_bytes.data() : nullptr,
                      started ? prev_e.data() : nullptr);
      Acts a = Acts::carve(acts.data(), stats.data(), B, m.dims_);
      m.stack_forward([&](int l) { return r + l * rows; }, [&](int) { return a; }, B, 1, &state);
      m.output_forward(logits.data(), raw.data(), z.data(), zstat.data(), r + m.dims_.layers * rows, B);
      m.ops_.copy_to_host(logits_host, logits.data(), (size_t)B * 256);
      std::swap(e, prev_e);  // this step's un-smeared rows are the next step's previous ones
      m.ops_.put_bytes(prev_bytes, bytes_host, B);
      state.pos++;
      started = true;
    }
  };

  TransformerDims dims_;
  size_t emb_, head_, lnf_w_, lnf_b_;
  size_t bigram_table_ = 0, bigram_proj_ = 0, smear_w_ = 0, smear_lambda_ = 0, skip_ = 0;
  std::vector<Layer> layers_;
  int batch_ = 0, seq_ = 0;
  size_t capacity_ = 0;  // rows the buffers hold
  Buffer<uint8_t> x_, y_;
  Buffer<A> e_, bigram_rows_, stream_, acts_, z_, logits_, raw_logits_;
  Buffer<A> dstream_, dln_, dmixed_, dmix_, dtmp_, dbigram_, mlp_scratch_, skip_grads_;
  Buffer<T> smear_gate_, stats_, zstat_, loss_, delta_;
};

}  // namespace

template <class T>
std::unique_ptr<Model<T>> make_transformer_model(const ModelConfig& config, uint64_t seed) {
  return std::make_unique<TransformerModel<T, CpuOps>>(config, seed);
}

#ifdef BYTELM_WITH_CUDA
std::unique_ptr<Model<float>> make_transformer_model_cuda(const ModelConfig& config, uint64_t seed,
                                                          const std::string& gemm) {
  if (gemm == "bf16")
    return std::make_unique<TransformerModel<float, CudaOps<bf16>>>(config, seed, GemmPrecision::bf16);
  GemmPrecision p = gemm == "fp32" ? GemmPrecision::fp32 : GemmPrecision::tf32;
  return std::make_unique<TransformerModel<float, CudaOps<float>>>(config, seed, p);
}
#endif

template std::unique_ptr<Model<float>> make_transformer_model<float>(const ModelConfig&, uint64_t);
template std::unique_ptr<Model<double>> make_transformer_model<double>(const ModelConfig&, uint64_t);

}  // namespace bytelm
