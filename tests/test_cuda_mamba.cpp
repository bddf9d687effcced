// The mamba family on the GPU: its two kernels (causal conv, selective scan) against the CPU reference in fp32
// and bf16, piecewise (streaming) against whole, bit-reproducibility of their backward; and the model against
// the CPU (loss, every gradient, a training curve), causality, streams, graph replay, bf16 against fp32.
// Suites CudaMambaLayers and CudaMambaModel carry the ctest label `cuda` and skip without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "causality.h"
#include "cuda_model_testing.h"
#include "core/rng.h"
#include "model_testing.h"
#include "models/model.h"
#include "stream_parity.h"
#include "train/adamw.h"
#include "train/train_step.h"
#ifdef BYTELM_WITH_CUDA
#include "cuda_testing.h"
#include "layers/causal_conv.h"
#include "layers/causal_conv_cuda.h"
#include "layers/selective_scan.h"
#include "layers/selective_scan_cuda.h"
#endif

using namespace bytelm;
using namespace bytelm::testing;

#ifdef BYTELM_WITH_CUDA

namespace {

class CudaMambaLayers : public CudaTest {};

// The scan's inputs and weights, around the values a model meets: A_log near log(1..N); step sizes from
// softplus(dt + dt_bias) with dt_bias spread so that some channels remember for hundreds of steps.
struct ScanData {
  int B, T, Di, N;
  V x, dt, BC, z, A_log, D, dt_bias;
  ScanData(int B_, int T_, int Di_, int N_, Rng& rng) : B(B_), T(T_), Di(Di_), N(N_) {
    size_t M = (size_t)B * T;
    x = random_floats(M * Di, rng);
    dt = random_floats(M * Di, rng, 0.5);
    BC = random_floats(M * 2 * N, rng);
    z = random_floats(M * Di, rng);
    A_log = random_floats((size_t)Di * N, rng, 0.1);
    for (int i = 0; i < Di; i++)
      for (int n = 0; n < N; n++) A_log[(size_t)i * N + n] += std::log(float(n + 1));
    D = random_floats(Di, rng, 0.5, 1.0);
    dt_bias = V(Di);
    for (int i = 0; i < Di; i++) dt_bias[i] = -6.f + 7.f * i / std::max(1, Di - 1);  // softplus 2.5e-3 .. 1.3
  }
  void round_inputs_bf16() { x = round_bf16(x), dt = round_bf16(dt), BC = round_bf16(BC), z = round_bf16(z); }
  ScanInputs<float> inputs() const { return {x.data(), dt.data(), BC.data(), z.data()}; }
  SelectiveScanWeights<float> weights() const { return {A_log.data(), D.data(), dt_bias.data()}; }
};

// The input and weight gradients of one backward, as host vectors in a fixed order.
struct ScanGrads {
  V dx, ddt, dBC, dz, dA_log, dD, ddt_bias;
  std::vector<V> all() const { return {dx, ddt, dBC, dz, dA_log, dD, ddt_bias}; }
};

// Device copies of a ScanData in storage type S (float, or bf16 of already bf16-rounded values).
template <class S>
struct DevScan {
  Dev<S> x, dt, BC, z;
  Dev<float> A_log, D, dt_bias;
  template <class Convert>
  DevScan(const ScanData& s, Convert to_s)
      : x(to_s(s.x)), dt(to_s(s.dt)), BC(to_s(s.BC)), z(to_s(s.z)), A_log(s.A_log), D(s.D), dt_bias(s.dt_bias) {}
  ScanInputs<S> inputs() const { return {x.p, dt.p, BC.p, z.p}; }
  SelectiveScanWeights<float> weights() const { return {A_log.p, D.p, dt_bias.p}; }
};

std::vector<float> identity(const V& v) { return v; }

// The GPU backward from the given weight-gradient starting values; input gradients poisoned first.
template <class S, class ToFloat>
ScanGrads gpu_scan_backward(const DevScan<S>& in, const ScanData& s, const Dev<S>& dy, const ScanGrads& start,
                            ToFloat to_f, cudaStream_t stream) {
  size_t M = (size_t)s.B * s.T;
  Dev<S> dx(M * s.Di), ddt(M * s.Di), dBC(M * 2 * s.N), dz(M * s.Di);
  Dev<float> dA_log(start.dA_log), dD(start.dD), ddt_bias(start.ddt_bias);
  Dev<float> work(selective_scan_backward_cuda_workspace_bytes(s.B, s.T, s.Di, s.N) / sizeof(float));
  selective_scan_backward_cuda(ScanInputGrads<S>{dx.poison().p, ddt.poison().p, dBC.poison().p, dz.poison().p},
                               SelectiveScanGrads<float>{dA_log.p, dD.p, ddt_bias.p}, dy.p, in.inputs(), in.weights(),
                               s.B, s.T, s.Di, s.N, work.poison().p, stream);
  return {to_f(dx.get()), to_f(ddt.get()), to_f(dBC.get()), to_f(dz.get()), dA_log.get(), dD.get(), ddt_bias.get()};
}

ScanGrads cpu_scan_backward(const ScanData& s, const V& dy, const ScanGrads& start) {
  size_t M = (size_t)s.B * s.T;
  ScanGrads g{V(M * s.Di), V(M * s.Di), V(M * 2 * s.N), V(M * s.Di), start.dA_log, start.dD, start.ddt_bias};
  selective_scan_backward(ScanInputGrads<float>{g.dx.data(), g.ddt.data(), g.dBC.data(), g.dz.data()},
                          SelectiveScanGrads<float>{g.dA_log.data(), g.dD.data(), g.ddt_bias.data()}, dy.data(),
                          s.inputs(), s.weights(), s.B, s.T, s.Di, s.N);
  return g;
}

ScanGrads random_weight_grads(const ScanData& s, Rng& rng) {
  return {{}, {}, {}, {}, random_floats((size_t)s.Di * s.N, rng), random_floats(s.Di, rng),
          random_floats(s.Di, rng)};
}

const char* const kGradNames[] = {"dx", "ddt", "dBC", "dz", "dA_log", "dD", "ddt_bias"};

}  // namespace

TEST_F(CudaMambaLayers, CausalConv) {
  struct Case {
    int B, T, C, K;
    bool with_state;
  };
  // odd widths and lengths; T < K-1 (the new state keeps part of the old); K = 2 and 3.
  for (Case k : {Case{3, 37, 45, 4, false}, Case{2, 2, 33, 4, true}, Case{2, 50, 64, 2, true},
                 Case{1, 300, 7, 3, false}}) {
    SCOPED_TRACE("B=" + std::to_string(k.B) + " T=" + std::to_string(k.T) + " C=" + std::to_string(k.C));
    tag = "T=" + std::to_string(k.T) + " C=" + std::to_string(k.C) + " ";
    Rng rng(301 + k.T);
    int B = k.B, T = k.T, C = k.C, K = k.K;
    size_t n = (size_t)B * T * C, ns = (size_t)B * (K - 1) * C;
    V x = random_floats(n, rng), w = random_floats(C * K, rng, 0.5), bias = random_floats(C, rng, 0.5),
      dy = random_floats(n, rng), state = random_floats(ns, rng), dw0 = random_floats(C * K, rng),
      db0 = random_floats(C, rng);
    V y_ref(n), state_ref = state, dx_ref(n), dw_ref = dw0, db_ref = db0;
    causal_conv_forward(y_ref.data(), x.data(), w.data(), bias.data(), B, T, C, K,
                        k.with_state ? state_ref.data() : nullptr);
    causal_conv_backward(dx_ref.data(), dw_ref.data(), db_ref.data(), dy.data(), x.data(), w.data(), bias.data(), B, T,
                         C, K);

    Dev<float> x_d(x), w_d(w), b_d(bias), dy_d(dy), state_d(state), y_d(n), dx_d(n), dw_d(dw0), db_d(db0),
        part_d(causal_conv_backward_cuda_partials(B, T, C, K));
    causal_conv_forward_cuda(y_d.poison().p, x_d.p, w_d.p, b_d.p, B, T, C, K, k.with_state ? state_d.p : nullptr,
                             stream);
    causal_conv_backward_cuda(dx_d.poison().p, dw_d.p, db_d.p, dy_d.p, x_d.p, w_d.p, b_d.p, B, T, C, K,
                              part_d.poison().p, stream);
    expect_close("y", y_d.get(), y_ref);
    if (k.with_state) expect_close("state", state_d.get(), state_ref);
    expect_close("dx", dx_d.get(), dx_ref);
    expect_close("dw", dw_d.get(), dw_ref);
    expect_close("dbias", db_d.get(), db_ref);
  }
}

TEST_F(CudaMambaLayers, SelectiveScan) {
  struct Case {
    int B, T, Di, N;
    bool with_state;
  };
  // T not a multiple of the 32-row segments the kernels stage (and the backward's boundaries), Di not a multiple of
  // the 32-channel tile, N = 16 and odd N; long sequences (32 and 19 segments, states carried across every boundary,
  // the slowest channels' delta 2.5e-3 remembering hundreds of rows); T = 1, the streaming shape; T one segment
  // exactly; two segments and a row over four tiles, the last of one channel.
  for (Case k : {Case{2, 37, 45, 16, true}, Case{3, 48, 32, 5, false}, Case{1, 1000, 70, 7, true},
                 Case{2, 1, 33, 16, true}, Case{3, 32, 20, 3, false}, Case{2, 65, 97, 16, true},
                 Case{1, 600, 64, 16, false}}) {
    SCOPED_TRACE("B=" + std::to_string(k.B) + " T=" + std::to_string(k.T) + " Di=" + std::to_string(k.Di) +
                 " N=" + std::to_string(k.N));
    tag = "T=" + std::to_string(k.T) + " Di=" + std::to_string(k.Di) + " N=" + std::to_string(k.N) + " ";
    Rng rng(311 + k.T + k.N);
    ScanData s(k.B, k.T, k.Di, k.N, rng);
    size_t M = (size_t)k.B * k.T, hs = (size_t)k.B * k.N * k.Di;
    V dy = random_floats(M * k.Di, rng), state = random_floats(hs, rng), y_ref(M * k.Di), state_ref = state;
    selective_scan_forward(y_ref.data(), s.inputs(), s.weights(), k.B, k.T, k.Di, k.N,
                           k.with_state ? state_ref.data() : nullptr);
    ScanGrads start = random_weight_grads(s, rng), ref = cpu_scan_backward(s, dy, start);

    DevScan<float> in(s, identity);
    Dev<float> y_d(M * k.Di), state_d(state), dy_d(dy);
    selective_scan_forward_cuda(y_d.poison().p, in.inputs(), in.weights(), k.B, k.T, k.Di, k.N,
                                k.with_state ? state_d.p : nullptr, stream);
    expect_close("y", y_d.get(), y_ref);
    if (k.with_state) expect_close("state", state_d.get(), state_ref);
    ScanGrads got = gpu_scan_backward(in, s, dy_d, start, identity, stream);
    std::vector<V> g = got.all(), r = ref.all();
    for (size_t j = 0; j < g.size(); j++) expect_close(kGradNames[j], g[j], r[j]);
  }
}

// bf16 storage of x, dt, BC, z, y and the input gradients; the scan itself and the weight gradients stay fp32,
// so those match the CPU on the same rounded inputs to fp32 accuracy.
TEST_F(CudaMambaLayers, Bf16SelectiveScanAndConv) {
  Rng rng(321);
  ScanData s(2, 100, 45, 16, rng);
  s.round_inputs_bf16();
  size_t M = (size_t)s.B * s.T;
  V dy = round_bf16(random_floats(M * s.Di, rng)), y_ref(M * s.Di);
  selective_scan_forward(y_ref.data(), s.inputs(), s.weights(), s.B, s.T, s.Di, s.N, (float*)nullptr);
  ScanGrads start = random_weight_grads(s, rng), ref = cpu_scan_backward(s, dy, start);
  DevScan<bf16> in(s, to_bf16);
  Dev<bf16> y_d(M * s.Di), dy_d(to_bf16(dy));
  selective_scan_forward_cuda(y_d.poison().p, in.inputs(), in.weights(), s.B, s.T, s.Di, s.N, (float*)nullptr, stream);
  expect_close("scan y", to_float(y_d.get()), y_ref, kBf16Tol);
  ScanGrads got = gpu_scan_backward(in, s, dy_d, start, to_float, stream);
  std::vector<V> g = got.all(), r = ref.all();
  for (size_t j = 0; j < g.size(); j++) expect_close(std::string("scan ") + kGradNames[j], g[j], r[j], j < 4 ? kBf16Tol : kTol);

  int B = 3, T = 37, C = 45, K = 4;
  size_t n = (size_t)B * T * C;
  V x = round_bf16(random_floats(n, rng)), w = random_floats(C * K, rng, 0.5), bias = random_floats(C, rng, 0.5),
    cdy = round_bf16(random_floats(n, rng)), cy_ref(n), dx_ref(n), dw_ref(C * K, 0.f), db_ref(C, 0.f);
  causal_conv_forward(cy_ref.data(), x.data(), w.data(), bias.data(), B, T, C, K, (float*)nullptr);
  causal_conv_backward(dx_ref.data(), dw_ref.data(), db_ref.data(), cdy.data(), x.data(), w.data(), bias.data(), B, T,
                       C, K);
  Dev<bf16> x_d(to_bf16(x)), cdy_d(to_bf16(cdy)), cy_d(n), dx_d(n);
  Dev<float> w_d(w), b_d(bias), dw_d(V(C * K, 0.f)), db_d(V(C, 0.f)), part_d(causal_conv_backward_cuda_partials(B, T, C, K));
  causal_conv_forward_cuda(cy_d.poison().p, x_d.p, w_d.p, b_d.p, B, T, C, K, (float*)nullptr, stream);
  causal_conv_backward_cuda(dx_d.poison().p, dw_d.p, db_d.p, cdy_d.p, x_d.p, w_d.p, b_d.p, B, T, C, K, part_d.p, stream);
  expect_close("conv y", to_float(cy_d.get()), cy_ref, kBf16Tol);
  expect_close("conv dx", to_float(dx_d.get()), dx_ref, kBf16Tol);
  expect_close("conv dw", dw_d.get(), dw_ref, kTol);
  expect_close("conv dbias", db_d.get(), db_ref, kTol);
}

// Streaming on the GPU is the forward at T = 1 with the states carried: stepping each sequence one byte at a time
// gives the whole-sequence forward and its final states to the bit (the same per-thread arithmetic).
TEST_F(CudaMambaLayers, StepsEqualWholeSequence) {
  Rng rng(331);
  int B = 2, T = 23, Di = 45, N = 16, K = 4;
  ScanData s(B, T, Di, N, rng);
  size_t M = (size_t)B * T;
  V state = random_floats((size_t)B * N * Di, rng), cstate = random_floats((size_t)B * (K - 1) * Di, rng);
  V w = random_floats(Di * K, rng, 0.5), bias = random_floats(Di, rng, 0.5);
  DevScan<float> in(s, identity);
  Dev<float> y_whole(M * Di), y_steps(M * Di), st_whole(state), st_steps(state), u_whole(M * Di), u_steps(M * Di),
      cs_whole(cstate), cs_steps(cstate), w_d(w), b_d(bias);
  selective_scan_forward_cuda(y_whole.poison().p, in.inputs(), in.weights(), B, T, Di, N, st_whole.p, stream);
  causal_conv_forward_cuda(u_whole.poison().p, in.x.p, w_d.p, b_d.p, B, T, Di, K, cs_whole.p, stream);
  y_steps.poison();
  u_steps.poison();
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      size_t row = (size_t)b * T + t;
      ScanInputs<float> r{in.x.p + row * Di, in.dt.p + row * Di, in.BC.p + row * 2 * N, in.z.p + row * Di};
      selective_scan_forward_cuda(y_steps.p + row * Di, r, in.weights(), 1, 1, Di, N, st_steps.p + (size_t)b * N * Di,
                                  stream);
      causal_conv_forward_cuda(u_steps.p + row * Di, in.x.p + row * Di, w_d.p, b_d.p, 1, 1, Di, K,
                               cs_steps.p + (size_t)b * (K - 1) * Di, stream);
    }
  EXPECT_TRUE(bit_equal(y_steps.get(), y_whole.get())) << "scan outputs";
  EXPECT_TRUE(bit_equal(st_steps.get(), st_whole.get())) << "scan states";
  EXPECT_TRUE(bit_equal(u_steps.get(), u_whole.get())) << "conv outputs";
  EXPECT_TRUE(bit_equal(cs_steps.get(), cs_whole.get())) << "conv states";
}

// Two runs of each backward from the same inputs give identical bits (no atomics anywhere).
TEST_F(CudaMambaLayers, BackwardIsBitReproducible) {
  Rng rng(341);
  ScanData s(4, 517, 200, 16, rng);
  size_t M = (size_t)s.B * s.T;
  DevScan<float> in(s, identity);
  Dev<float> dy(random_floats(M * s.Di, rng));
  ScanGrads zero{{}, {}, {}, {}, V((size_t)s.Di * s.N, 0.f), V(s.Di, 0.f), V(s.Di, 0.f)};
  auto run = [&] { return gpu_scan_backward(in, s, dy, zero, identity, stream).all(); };
  EXPECT_TRUE(bit_equal(run(), run())) << "selective scan";

  int B = 4, T = 517, C = 200, K = 4;
  size_t n = (size_t)B * T * C;
  Dev<float> x(random_floats(n, rng)), w(random_floats(C * K, rng, 0.5)), bias(random_floats(C, rng)),
      cdy(random_floats(n, rng)), part(causal_conv_backward_cuda_partials(B, T, C, K));
  auto conv = [&] {
    Dev<float> dx(n), dw(V(C * K, 0.f)), db(V(C, 0.f));
    causal_conv_backward_cuda(dx.p, dw.p, db.p, cdy.p, x.p, w.p, bias.p, B, T, C, K, part.p, stream);
    return std::vector<V>{dx.get(), dw.get(), db.get()};
  };
  EXPECT_TRUE(bit_equal(conv(), conv())) << "causal conv";
}

#endif  // BYTELM_WITH_CUDA

namespace {

ModelConfig mamba(int d, int layers) { return {"mamba", d, layers, 1}; }

}  // namespace

// d = 40: inner width 80 (not a multiple of the warp), dt_rank 3; T = 131 (not a multiple of the chunk).
TEST(CudaMambaModel, LossAndGradientsMatchCpu) {
  REQUIRE_GPU();
  ModelConfig c = mamba(40, 2);
  auto cpu = make_model_on("cpu", c, 7);
  auto gpu = make_model_on("cuda-fp32", c, 7);
  perturb_params(*cpu, 3);  // off the init: norms, D, biases generic
  gpu->params() = cpu->params();
  gpu->push_params();
  expect_gpu_matches_cpu(*cpu, *gpu, 3, 131, 5, "mamba");
}

TEST(CudaMambaModel, CausalOnGpu) {
  REQUIRE_GPU();
  for (const char* device : {"cuda-fp32", "cuda"}) {
    auto m = make_model_on(device, mamba(32, 2), 5);
    Rng rng(9);
    expect_causal(*m, 33, rng, device);
  }
}

// B streams stepped together on the GPU (conv inputs and scan states kept in fp32 between bytes) give the GPU's
// parallel forward: to fp32 accuracy in fp32, within bf16 rounding in bf16 (the parallel forward stores the
// scan's inputs in bf16 too, but the products run at another batch shape).
TEST(CudaMambaModel, StreamsMatchParallelForward) {
  REQUIRE_GPU();
  for (const char* device : {"cuda-fp32", "cuda"}) {
    auto m = make_model_on(device, mamba(48, 3), 9);
    Rng rng(14);
    double tol = std::string(device) == "cuda" ? 2e-2 : 1e-4;
    double e = stream_vs_forward_error(*m, 5, 37, rng);
    ::testing::Test::RecordProperty(device, std::to_string(e));
    EXPECT_LT(e, tol) << device;
  }
}

// 50 AdamW steps from the same init on the same text batches: the GPU (fp32) follows the CPU's curve.
TEST(CudaMambaModel, FiftyTrainingStepsMatchCpu) {
  REQUIRE_GPU();
  ModelConfig c = mamba(32, 2);
  auto cpu = make_model_on("cpu", c, 11);
  auto gpu = make_model_on("cuda-fp32", c, 11);
  AdamW oc(cpu->params().size()), og(gpu->params().size());
  expect_training_follows_cpu(*cpu, *gpu, oc, og, 50, "mamba");
}

// TF32 and bf16 products (and bf16 storage) compute the same function to their accuracy.
TEST(CudaMambaModel, FastPathsCloseToFp32) {
  REQUIRE_GPU();
  for (const char* device : {"cuda-tf32", "cuda"}) {
    auto exact = make_model_on("cuda-fp32", mamba(64, 2), 3);
    auto fast = make_model_on(device, mamba(64, 2), 3);
    expect_close_to_fp32(*exact, *fast, device, 4, 256, "mamba");
  }
}

// Graph-replayed training steps (train/train_step.h) equal direct ones to the bit, in bf16.
TEST(CudaMambaModel, GraphStepsMatchDirectSteps) {
  REQUIRE_GPU();
  auto replayed = make_model_on("cuda", mamba(64, 2), 13), direct = make_model_on("cuda", mamba(64, 2), 13);
  expect_graph_steps_match_direct(*replayed, *direct, 100, "mamba");
}
