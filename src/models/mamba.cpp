#include "models/mamba.h"

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

namespace {

// One block's activations over M rows, kept for the backward: the rows (of the backend's activation type A)
// carved from one buffer, each array 16-byte aligned; the LayerNorm statistics (of the model's T) from another.
template <class T, class A>
struct MambaActs {
  A* norm;     // LN(r) [M, d]
  A *x, *z;    // the two halves of in_proj [M, Di]: the scan's input branch and its gate
  A* u;        // SiLU(CausalConv(x)) [M, Di]
  A *dt_low, *BC;  // x_proj(u): [M, R] and [M, 2N]
  A* dt;       // dt_proj(dt_low) [M, Di], before the scan adds dt_bias and takes softplus
  A* y;        // the scan's gated output [M, Di]
  T *norm_mean, *norm_rstd;  // [M] each
  static size_t rows_size(size_t M, const MambaDims& m) {
    auto n = [](size_t k) { return aligned16_count<A>(k); };
    return n(M * m.d) + 5 * n(M * m.inner) + n(M * m.dt_rank) + n(M * 2 * m.state);
  }
  static size_t stats_size(size_t M) { return 2 * M; }
  static MambaActs carve(A* rows, T* stats, size_t M, const MambaDims& m) {
    MambaActs a;
    auto take = [&](size_t n) { return take_aligned16(rows, n); };
    a.norm = take(M * m.d);
    a.x = take(M * m.inner);
    a.z = take(M * m.inner);
    a.u = take(M * m.inner);
    a.dt_low = take(M * m.dt_rank);
    a.BC = take(M * 2 * m.state);
    a.dt = take(M * m.inner);
    a.y = take(M * m.inner);
    a.norm_mean = stats;
    a.norm_rstd = stats + M;
    return a;
  }
  ScanInputs<A> scan_inputs() const { return {u, dt, BC, z}; }
};

// The gradients of one block's activations over M rows, shared by the blocks in turn.
template <class A>
struct MambaGrads {
  A *y, *u, *dt, *z, *BC, *dt_low, *x, *norm;
  static size_t size(size_t M, const MambaDims& m) {
    auto n = [](size_t k) { return aligned16_count<A>(k); };
    return n(M * m.d) + 5 * n(M * m.inner) + n(M * m.dt_rank) + n(M * 2 * m.state);
  }
  static MambaGrads carve(A* p, size_t M, const MambaDims& m) {
    MambaGrads g;
    auto take = [&](size_t n) { return take_aligned16(p, n); };
    g.y = take(M * m.inner);
    g.u = take(M * m.inner);
    g.dt = take(M * m.inner);
    g.z = take(M * m.inner);
    g.BC = take(M * 2 * m.state);
    g.dt_low = take(M * m.dt_rank);
    g.x = take(M * m.inner);
    g.norm = take(M * m.d);
    return g;
  }
};

// One composition for every backend, as SsmModel: Ops supplies the buffers and the layer calls; OpsModel the
// device copies of the parameters (see ops_model.h). The matrix products read their weights as A (WA()), the
// norms, the convolution and the scan read the fp32 parameters (W()).
template <class T, class Ops>
class MambaModel final : public OpsModel<T, Ops> {
  using A = typename OpsModel<T, Ops>::A;
  using OpsModel<T, Ops>::ops_;
  using OpsModel<T, Ops>::W;
  using OpsModel<T, Ops>::WA;
  using OpsModel<T, Ops>::G;

 public:
  template <class... OpsArgs>
  MambaModel(const ModelConfig& config, uint64_t seed, OpsArgs... ops_args)
      : OpsModel<T, Ops>(ops_args...), dims_(config) {
    this->config_ = config;
    int d = dims_.d, Di = dims_.inner, N = dims_.state, R = dims_.dt_rank;
    emb_ = this->add_param("embed.weight", {256, d});
    for (int l = 0; l < config.layers; l++) {
      std::string p = "blocks." + std::to_string(l) + ".";
      Layer L;
      // LayerNorm where Mamba has RMSNorm: bytelm's existing norm layer, one more vector (the bias) a block.
      L.norm_w = this->add_param(p + "norm.weight", {d});
      L.norm_b = this->add_param(p + "norm.bias", {d});
      L.in_x = this->add_param(p + "mamba.in_proj.weight", {2 * Di, d});  // the rows making x, then those making z
      L.in_z = L.in_x + (size_t)Di * d;
      L.conv_w = this->add_param(p + "mamba.conv1d.weight", {Di, dims_.conv});
      L.conv_b = this->add_param(p + "mamba.conv1d.bias", {Di});
      L.x_dt = this->add_param(p + "mamba.x_proj.weight", {R + 2 * N, Di});  // rows making dt_low, then B and C
      L.x_BC = L.x_dt + (size_t)R * Di;
      L.dt_proj = this->add_param(p + "mamba.dt_proj.weight", {Di, R});
      L.dt_bias = this->add_param(p + "mamba.dt_proj.bias", {Di});
      // a matrix, but of decay rates: Mamba exempts it from weight decay
      L.A_log = this->add_param(p + "mamba.A_log", {Di, N}, false);
      L.D = this->add_param(p + "mamba.D", {Di});
      L.out_proj = this->add_param(p + "mamba.out_proj.weight", {d, Di});
      layers_.push_back(L);
    }
    norm_w_ = this->add_param("norm.weight", {d});
    norm_b_ = this->add_param("norm.bias", {d});
    this->allocate();
    init(seed);
    this->place_params();
  }

  T forward(const uint8_t* x, const uint8_t* y, int B, int T_, T* row_loss) override {
    int M = B * T_, L = this->config_.layers;
    ensure(B, T_);
    const uint8_t* xs = ops_.put_bytes(x_, x, M);
    const uint8_t* ys = ops_.put_bytes(y_, y, M);
    ops_.embedding_forward(stream_at(0), xs, W() + emb_, M, dims_.d);
    for (int l = 0; l < L; l++) block_forward(l, stream_at(l), stream_at(l + 1), acts(l), B, T_, nullptr, nullptr);
    output_forward(logits_.data(), final_norm_.data(), final_stats_.data(), stream_at(L), M);
    ops_.cross_entropy(loss_.data(), (A*)nullptr, logits_.data(), ys, M, T(0));
    return this->last_loss_ = ops_.mean_loss(loss_.data(), M, row_loss);
  }

  void backward() override {
    int B = batch_, M = B * seq_, L = this->config_.layers, d = dims_.d;
    const T* W = this->W();
    T* G = this->G();
    A* dlogits = logits_.data();  // the logits are not needed again: reuse in place
    ops_.cross_entropy(loss_.data(), dlogits, logits_.data(), y_.data(), M, T(1) / M);
    MambaGrads<A> g = grads_at();
    // The head's half of the embedding's gradient; the input's half comes last.
    ops_.linear_backward(g.norm, G + emb_, dlogits, final_norm_.data(), WA() + emb_, M, d, 256, false);
    ops_.layernorm_backward(dstream_.data(), G + norm_w_, G + norm_b_, g.norm, stream_at(L), final_stats_.data(),
                            final_stats_.data() + M, W + norm_w_, M, d, false);
    for (int l = L - 1; l >= 0; l--) block_backward(l, stream_at(l), acts(l), B, seq_);
    ops_.embedding_backward(G + emb_, dstream_.data(), x_.data(), M, d);
  }

  // B streams on the model's own device, through the same block code as the parallel forward (Streams below).
  std::unique_ptr<ByteStreams<T>> make_streams(int B) const override {
    if (B < 1) throw Error("make_streams needs at least one stream");
    return std::make_unique<Streams>(*this, B);
  }

 private:
  // Offsets of one block's tensors in the parameter buffer. in_proj and x_proj are each used as two
  // products (so that each output comes out as whole rows): in_x/in_z and x_dt/x_BC are their row blocks.
  struct Layer {
    size_t norm_w, norm_b, in_x, in_z, conv_w, conv_b, x_dt, x_BC, dt_proj, dt_bias, A_log, D, out_proj;
  };

  // A_log, D and dt_bias as Mamba initialises them (selective_scan_init); the matrices and the conv taps at
  // 1/sqrt(fan_in), residual output projections scaled down by sqrt(2 L), as in the ssm family; the norm and
  // conv biases zero.
  // The embedding is also the head: at std 0.5/sqrt(d) the first logits z E^T of a unit-variance z have
  // std 0.5, so the first loss is about ln 256 + 0.5^2/2.
  void init(uint64_t seed) {
    Rng rng(seed);
    auto normal = [&](size_t off, size_t n, double std) { this->init_normal(rng, off, n, std); };
    auto fill = [&](size_t off, size_t n, double v) { this->init_fill(off, n, v); };
    T* W = this->params_.data();  // for the layers' own initialisers
    size_t d = dims_.d, Di = dims_.inner, N = dims_.state, R = dims_.dt_rank, K = dims_.conv;
    double out_scale = 1.0 / std::sqrt(2.0 * this->config_.layers);
    normal(emb_, 256 * d, 0.5 / std::sqrt(double(d)));
    for (const Layer& L : layers_) {
      fill(L.norm_w, d, 1);
      normal(L.in_x, 2 * Di * d, 1 / std::sqrt(double(d)));
      normal(L.conv_w, Di * K, 1 / std::sqrt(double(K)));
      normal(L.x_dt, (R + 2 * N) * Di, 1 / std::sqrt(double(Di)));
      normal(L.dt_proj, Di * R, 1 / std::sqrt(double(R)));
      selective_scan_init(W + L.A_log, W + L.D, W + L.dt_bias, (int)Di, (int)N, rng);
      normal(L.out_proj, d * Di, out_scale / std::sqrt(double(Di)));
    }
    fill(norm_w_, d, 1);
  }

  void ensure(int B, int seq) {
    batch_ = B;
    seq_ = seq;
    size_t M = (size_t)B * seq, L = this->config_.layers;
    if (M <= capacity_) return;
    capacity_ = M;
    Ops::resize(stream_, (L + 1) * M * dims_.d);
    Ops::resize(acts_, L * Acts::rows_size(M, dims_));
    Ops::resize(stats_, L * Acts::stats_size(M));
    Ops::resize(grads_scratch_, MambaGrads<A>::size(M, dims_));
    Ops::resize(dstream_, M * dims_.d);
    Ops::resize(final_norm_, M * dims_.d);
    Ops::resize(final_stats_, 2 * M);
    Ops::resize(logits_, M * 256);
    Ops::resize(loss_, M);
  }

  using Acts = MambaActs<T, A>;
  // The residual stream entering block l (l = layers: leaving the last block), [M, d].
  A* stream_at(int l) { return stream_.data() + (size_t)l * capacity_ * dims_.d; }
  Acts acts(int l) {
    return Acts::carve(acts_.data() + l * Acts::rows_size(capacity_, dims_),
                       stats_.data() + l * Acts::stats_size(capacity_), capacity_, dims_);
  }
  MambaGrads<A> grads_at() { return MambaGrads<A>::carve(grads_scratch_.data(), capacity_, dims_); }

  SelectiveScanWeights<T> scan_weights(const Layer& L) const {
    const T* W = this->W();
    return {W + L.A_log, W + L.D, W + L.dt_bias};
  }

  // out = in + Mixer(LN(in)) over B sequences of T_ bytes. conv_state ([B, K-1, Di]) and ssm_state
  // ([B, N, Di]) carry a stream from step to step; null (training) starts from zero.
  void block_forward(int l, const A* in, A* out, Acts a, int B, int T_, T* conv_state, T* ssm_state) const {
    const Layer& L = layers_[l];
    const T* W = this->W();
    const A* WA = this->WA();
    int M = B * T_, d = dims_.d, Di = dims_.inner, N = dims_.state, R = dims_.dt_rank;
    ops_.layernorm_forward(a.norm, a.norm_mean, a.norm_rstd, in, W + L.norm_w, W + L.norm_b, M, d);
    ops_.linear_forward(a.x, a.norm, WA + L.in_x, M, d, Di);
    ops_.linear_forward(a.z, a.norm, WA + L.in_z, M, d, Di);
    ops_.causal_conv_forward(a.u, a.x, W + L.conv_w, W + L.conv_b, B, T_, Di, dims_.conv, conv_state);
    ops_.linear_forward(a.dt_low, a.u, WA + L.x_dt, M, Di, R);
    ops_.linear_forward(a.BC, a.u, WA + L.x_BC, M, Di, 2 * N);
    ops_.linear_forward(a.dt, a.dt_low, WA + L.dt_proj, M, R, Di);
    ops_.selective_scan_forward(a.y, a.scan_inputs(), scan_weights(L), B, T_, Di, N, ssm_state);
    ops_.linear_forward(out, a.y, WA + L.out_proj, M, Di, d);
    ops_.add(out, in, (size_t)M * d);
  }

  // dstream_ holds d(loss)/d(out) on entry and d(loss)/d(in) on return.
  void block_backward(int l, const A* in, Acts a, int B, int T_) {
    const Layer& L = layers_[l];
    const T* W = this->W();
    const A* WA = this->WA();
    T* G = this->G();
    int M = B * T_, d = dims_.d, Di = dims_.inner, N = dims_.state, R = dims_.dt_rank;
    MambaGrads<A> g = grads_at();
    A* dout = dstream_.data();
    ops_.linear_backward(g.y, G + L.out_proj, dout, a.y, WA + L.out_proj, M, Di, d, false);
    ops_.selective_scan_backward(ScanInputGrads<A>{g.u, g.dt, g.BC, g.z},
                                 SelectiveScanGrads<T>{G + L.A_log, G + L.D, G + L.dt_bias}, g.y, a.scan_inputs(),
                                 scan_weights(L), B, T_, Di, N);
    ops_.linear_backward(g.dt_low, G + L.dt_proj, g.dt, a.dt_low, WA + L.dt_proj, M, R, Di, false);
    ops_.linear_backward(g.u, G + L.x_dt, g.dt_low, a.u, WA + L.x_dt, M, Di, R, true);
    ops_.linear_backward(g.u, G + L.x_BC, g.BC, a.u, WA + L.x_BC, M, Di, 2 * N, true);
    ops_.causal_conv_backward(g.x, G + L.conv_w, G + L.conv_b, g.u, a.x, W + L.conv_w, W + L.conv_b, B, T_, Di,
                              dims_.conv);
    ops_.linear_backward(g.norm, G + L.in_x, g.x, a.norm, WA + L.in_x, M, d, Di, false);
    ops_.linear_backward(g.norm, G + L.in_z, g.z, a.norm, WA + L.in_z, M, d, Di, true);
    ops_.layernorm_backward(dout, G + L.norm_w, G + L.norm_b, g.norm, in, a.norm_mean, a.norm_rstd, W + L.norm_w, M, d,
                            true);
  }

  // logits [M, 256] = LN(r) E^T; the normalised rows and their statistics (mean [M], rstd [M]) are kept.
  void output_forward(A* logits, A* normed, T* stats, const A* r, int M) const {
    const T* W = this->W();
    ops_.layernorm_forward(normed, stats, stats + M, r, W + norm_w_, W + norm_b_, M, dims_.d);
    ops_.linear_forward(logits, normed, this->WA() + emb_, M, dims_.d, 256);
  }

  // Streaming: B streams stepped together through the same block code at T = 1, each layer's convolution
  // inputs ([B, K-1, Di]) and scan state ([B, N, Di]) carried between bytes in T (fp32 on the GPU).
  struct Streams final : ByteStreams<T> {
    const MambaModel& m;
    int B;
    size_t conv_size, ssm_size;  // a layer's states
    typename Ops::template Buffer<uint8_t> bytes;
    typename Ops::template Buffer<T> conv_state, ssm_state, stats, final_stats;
    typename Ops::template Buffer<A> r, r_next, acts, normed, logits;
    Streams(const MambaModel& model, int streams) : m(model), B(streams) {
      const MambaDims& dims = m.dims_;
      size_t L = m.config_.layers;
      conv_size = (size_t)B * (dims.conv - 1) * dims.inner;
      ssm_size = (size_t)B * dims.inner * dims.state;
      Ops::resize(conv_state, L * conv_size);
      Ops::resize(ssm_state, L * ssm_size);
      Ops::resize(r, (size_t)B * dims.d);
      Ops::resize(r_next, (size_t)B * dims.d);
      Ops::resize(acts, Acts::rows_size(B, dims));
      Ops::resize(stats, Acts::stats_size(B));
      Ops::resize(normed, (size_t)B * dims.d);
      Ops::resize(final_stats, 2 * (size_t)B);
      Ops::resize(logits, (size_t)B * 256);
    }
    void step(const uint8_t* bytes_host, T* logits_host) override {
      const uint8_t* x = m.ops_.put_bytes(bytes, bytes_host, B);
      m.ops_.embedding_forward(r.data(), x, m.W() + m.emb_, B, m.dims_.d);
      Acts a = Acts::carve(acts.data(), stats.data(), B, m.dims_);
      for (int l = 0; l < m.config_.layers; l++) {
        m.block_forward(l, r.data(), r_next.data(), a, B, 1, conv_state.data() + l * conv_size,
                        ssm_state.data() + l * ssm_size);
        std::swap(r, r_next);
      }
      m.output_forward(logits.data(), normed.data(), final_stats.data(), r.data(), B);
      m.ops_.copy_to_host(logits_host, logits.data(), (size_t)B * 256);
    }
  };

  MambaDims dims_;
  size_t emb_, norm_w_, norm_b_;
  std::vector<Layer> layers_;
  int batch_ = 0, seq_ = 0;
  size_t capacity_ = 0;  // rows the buffers hold
  typename Ops::template Buffer<uint8_t> x_, y_;
  typename Ops::template Buffer<A> stream_, acts_, grads_scratch_, dstream_, final_norm_, logits_;
  typename Ops::template Buffer<T> stats_, final_stats_, loss_;
};

}  // namespace

template <class T>
std::unique_ptr<Model<T>> make_mamba_model(const ModelConfig& config, uint64_t seed) {
  return std::make_unique<MambaModel<T, CpuOps>>(config, seed);
}

#ifdef BYTELM_WITH_CUDA
std::unique_ptr<Model<float>> make_mamba_model_cuda(const ModelConfig& config, uint64_t seed,
                                                    const std::string& gemm) {
  if (gemm == "bf16") return std::make_unique<MambaModel<float, CudaOps<bf16>>>(config, seed, GemmPrecision::bf16);
  GemmPrecision p = gemm == "fp32" ? GemmPrecision::fp32 : GemmPrecision::tf32;
  return std::make_unique<MambaModel<float, CudaOps<float>>>(config, seed, p);
}
#endif

int64_t mamba_param_count(const ModelConfig& config) {
  MambaDims m(config);
  int64_t d = m.d, Di = m.inner, N = m.state, R = m.dt_rank, K = m.conv;
  // norm, in_proj, conv (+bias), x_proj, dt_proj (+bias), A_log, D, out_proj
  int64_t block = 2 * d + 2 * Di * d + Di * K + Di + (R + 2 * N) * Di + Di * R + Di + Di * N + Di + d * Di;
  return 256 * d + config.layers * block + 2 * d;  // embedding (also the head), blocks, final norm
}

template std::unique_ptr<Model<float>> make_mamba_model<float>(const ModelConfig&, uint64_t);
template std::unique_ptr<Model<double>> make_mamba_model<double>(const ModelConfig&, uint64_t);

}  // namespace bytelm
