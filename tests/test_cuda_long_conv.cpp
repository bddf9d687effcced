// The causal depthwise convolution on the GPU at any width (layers/causal_conv_cuda.h): the short kernels (K <= 8),
// the tiled long kernels and the few-rows streaming kernel against the CPU reference in fp32 and bf16, with and
// without streaming state; bit-reproducibility of the long backward; stepping a stream one row at a time against
// the whole sequence, to the bit; and a timing line for the hybrid's shape (Throughput). Suite CudaLongConv
// carries the ctest label `cuda` and skips without a GPU.
#include <gtest/gtest.h>

#ifdef BYTELM_WITH_CUDA

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "cuda_testing.h"
#include "layers/causal_conv.h"
#include "layers/causal_conv_cuda.h"

using namespace bytelm;
using namespace bytelm::testing;

namespace {

class CudaLongConv : public CudaTest {};

struct Shape {
  int B, T, C, K;
};

std::string describe(Shape s) {
  return "B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " C=" + std::to_string(s.C) +
         " K=" + std::to_string(s.K) + " ";
}

// Inputs at the scale a model meets: taps of 1/sqrt(K), so the pre-activations stay O(1) at every width and the
// SiLU is neither saturated nor linear.
struct ConvData {
  Shape s;
  V x, w, bias, dy, state, dw0, db0;
  ConvData(Shape s_, Rng& rng) : s(s_) {
    size_t n = (size_t)s.B * s.T * s.C;
    x = random_floats(n, rng);
    w = random_floats((size_t)s.C * s.K, rng, 1.0 / std::sqrt(double(s.K)));
    bias = random_floats(s.C, rng, 0.5);
    dy = random_floats(n, rng);
    state = random_floats((size_t)s.B * (s.K - 1) * s.C, rng);
    dw0 = random_floats((size_t)s.C * s.K, rng);  // the weight gradients accumulate: start them off zero
    db0 = random_floats(s.C, rng);
  }
  void round_bf16_inputs() { x = round_bf16(x), dy = round_bf16(dy), state = round_bf16(state); }
};

// Forward (state updated when with_state) and backward, on the CPU or on the GPU in storage A.
struct ConvResult {
  V y, state, dx, dw, db;
};

ConvResult cpu_conv(const ConvData& d, bool with_state) {
  Shape s = d.s;
  size_t n = (size_t)s.B * s.T * s.C;
  ConvResult r{V(n), d.state, V(n), d.dw0, d.db0};
  causal_conv_forward(r.y.data(), d.x.data(), d.w.data(), d.bias.data(), s.B, s.T, s.C, s.K,
                      with_state ? r.state.data() : nullptr);
  causal_conv_backward(r.dx.data(), r.dw.data(), r.db.data(), d.dy.data(), d.x.data(), d.w.data(), d.bias.data(), s.B,
                       s.T, s.C, s.K);
  return r;
}

V host_floats(const std::vector<float>& v) { return v; }
V host_floats(const std::vector<bf16>& v) { return to_float(v); }
std::vector<float> storage(const V& v, float) { return v; }
std::vector<bf16> storage(const V& v, bf16) { return to_bf16(v); }

template <class A>
ConvResult gpu_conv(const ConvData& d, bool with_state, cudaStream_t stream) {
  Shape s = d.s;
  size_t n = (size_t)s.B * s.T * s.C;
  Dev<A> x(storage(d.x, A())), dy(storage(d.dy, A())), y(n), dx(n);
  Dev<float> w(d.w), bias(d.bias), state(d.state), dw(d.dw0), db(d.db0),
      part(causal_conv_backward_cuda_partials(s.B, s.T, s.C, s.K));
  causal_conv_forward_cuda(y.poison().p, x.p, w.p, bias.p, s.B, s.T, s.C, s.K, with_state ? state.p : nullptr, stream);
  causal_conv_backward_cuda(dx.poison().p, dw.p, db.p, dy.p, x.p, w.p, bias.p, s.B, s.T, s.C, s.K, part.poison().p,
                            stream);
  return {host_floats(y.get()), state.get(), host_floats(dx.get()), dw.get(), db.get()};
}

}  // namespace

// Every regime: K = 3 (the short kernels), 17, 256 and 1000 with T below and above K; T < 32 (the few-rows
// forward) and T < K - 1 (the new state keeps part of the old); T over one dw segment (512 rows) and not a
// multiple of the 128-row tile; channel counts odd and not multiples of the 32-channel tile.
TEST_F(CudaLongConv, MatchesCpu) {
  struct Case {
    Shape s;
    bool with_state;
  };
  for (Case k : {Case{{2, 50, 45, 3}, true}, Case{{3, 40, 33, 17}, false}, Case{{2, 10, 45, 17}, true},
                 Case{{2, 130, 33, 17}, true}, Case{{2, 200, 65, 256}, false}, Case{{2, 5, 45, 256}, true},
                 Case{{1, 600, 37, 256}, true}, Case{{1, 700, 19, 1000}, true}, Case{{1, 1300, 33, 1000}, false}}) {
    tag = describe(k.s) + (k.with_state ? "state " : "");
    SCOPED_TRACE(tag);
    Rng rng(401 + k.s.K + k.s.T);
    ConvData d(k.s, rng);
    ConvResult ref = cpu_conv(d, k.with_state), got = gpu_conv<float>(d, k.with_state, stream);
    expect_close("y", got.y, ref.y);
    if (k.with_state) expect_close("state", got.state, ref.state);
    expect_close("dx", got.dx, ref.dx);
    expect_close("dw", got.dw, ref.dw);
    expect_close("dbias", got.db, ref.db);
  }
}

// bf16 storage of x, dy, y and dx; the taps, the state and the weight gradients stay fp32 (the state holds the
// inputs as read, so bf16 values exactly). The CPU runs in fp32 on the same rounded inputs: y and dx differ by
// their final rounding to bf16 (kBf16Tol), the rest by fp32 summation order (kTol).
TEST_F(CudaLongConv, Bf16MatchesCpu) {
  for (Shape s : {Shape{2, 300, 45, 256}, Shape{3, 7, 33, 256}, Shape{2, 100, 40, 4}}) {
    tag = describe(s);
    SCOPED_TRACE(tag);
    Rng rng(421 + s.T);
    ConvData d(s, rng);
    d.round_bf16_inputs();
    ConvResult ref = cpu_conv(d, true), got = gpu_conv<bf16>(d, true, stream);
    expect_close("y", got.y, ref.y, kBf16Tol);
    expect_close("state", got.state, ref.state);
    expect_close("dx", got.dx, ref.dx, kBf16Tol);
    expect_close("dw", got.dw, ref.dw);
    expect_close("dbias", got.db, ref.db);
  }
}

// Two runs of the long backward from the same inputs give identical bits (no atomics; fixed-order sums).
TEST_F(CudaLongConv, BackwardIsBitReproducible) {
  Rng rng(431);
  ConvData d({3, 1100, 70, 256}, rng);
  ConvResult a = gpu_conv<float>(d, false, stream), b = gpu_conv<float>(d, false, stream);
  EXPECT_TRUE(bit_equal(std::vector<V>{a.dx, a.dw, a.db}, std::vector<V>{b.dx, b.dw, b.db}));
  EXPECT_TRUE(bit_equal(a.y, b.y));
}

// Streaming: the sequence fed in pieces (33 rows: the tiled kernel from a state; 5 rows and single rows: the
// few-rows kernel) with the state carried gives the whole sequence's outputs and final state to the bit, since
// both kernels sum every pre-activation as one fmaf chain in tap order.
TEST_F(CudaLongConv, StepsEqualWholeSequence) {
  for (Shape s : {Shape{2, 60, 45, 256}, Shape{3, 50, 33, 17}}) {
    tag = describe(s);
    SCOPED_TRACE(tag);
    Rng rng(441 + s.K);
    ConvData d(s, rng);
    int B = s.B, T = s.T, C = s.C, K = s.K;
    size_t n = (size_t)B * T * C, hist = (size_t)(K - 1) * C;
    Dev<float> x(d.x), w(d.w), bias(d.bias), y_whole(n), st_whole(d.state), y_steps(n), st_steps(d.state);
    causal_conv_forward_cuda(y_whole.poison().p, x.p, w.p, bias.p, B, T, C, K, st_whole.p, stream);
    y_steps.poison();
    std::vector<int> pieces = {33, 5};
    pieces.resize(2 + T - 38, 1);  // then single rows to the end
    for (int b = 0; b < B; b++)
      for (int t = 0, i = 0; t < T; t += pieces[i++]) {
        size_t row = (size_t)b * T + t;
        causal_conv_forward_cuda(y_steps.p + row * C, x.p + row * C, w.p, bias.p, 1, pieces[i], C, K,
                                 st_steps.p + b * hist, stream);
      }
    EXPECT_TRUE(bit_equal(y_steps.get(), y_whole.get())) << tag << "outputs";
    EXPECT_TRUE(bit_equal(st_steps.get(), st_whole.get())) << tag << "states";
  }
}

TEST_F(CudaLongConv, RejectsWidthZero) {
  Dev<float> x(V(4, 1.f)), y(4), w(V(1, 1.f)), bias(V(4, 0.f));
  EXPECT_THROW(causal_conv_forward_cuda(y.p, x.p, w.p, bias.p, 1, 1, 4, 0, (float*)nullptr, stream), Error);
}

// Timing, not a bound: the lead reads these lines off the H100 run. The hybrid's shape (B 16, T 2048, d 320,
// K 256) forward and backward in fp32 and bf16, as milliseconds and as fp32 GFLOP/s of the convolution's
// arithmetic (2 B T C K a pass; the backward makes three: the pre-activations again, dx, dw); Mamba-10m's conv
// (K 4, inner width 512) on the short kernels; and a streaming step of 256 streams at K 256. The outputs are
// checked to be finite, so a kernel that faults or writes nothing fails here too.
TEST_F(CudaLongConv, Throughput) {
  cudaEvent_t start, stop;
  BYTELM_CUDA_CHECK(cudaEventCreate(&start));
  BYTELM_CUDA_CHECK(cudaEventCreate(&stop));
  auto time_ms = [&](auto&& f) {
    f();  // warm-up
    BYTELM_CUDA_CHECK(cudaEventRecord(start, stream));
    const int reps = 10;
    for (int i = 0; i < reps; i++) f();
    BYTELM_CUDA_CHECK(cudaEventRecord(stop, stream));
    BYTELM_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    BYTELM_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms / reps;
  };
  Rng rng(451);
  auto run = [&](auto a, Shape s, const char* what) {
    using A = decltype(a);
    size_t n = (size_t)s.B * s.T * s.C;
    V xh = random_floats(n, rng);
    Dev<A> x(storage(xh, A())), dy(storage(xh, A())), y(n), dx(n);
    Dev<float> w(random_floats((size_t)s.C * s.K, rng, 1.0 / std::sqrt(double(s.K)))), bias(V(s.C, 0.f)),
        dw(V((size_t)s.C * s.K, 0.f)), db(V(s.C, 0.f)), part(causal_conv_backward_cuda_partials(s.B, s.T, s.C, s.K));
    float fwd =
        time_ms([&] { causal_conv_forward_cuda(y.p, x.p, w.p, bias.p, s.B, s.T, s.C, s.K, (float*)nullptr, stream); });
    float bwd = time_ms([&] {
      causal_conv_backward_cuda(dx.p, dw.p, db.p, dy.p, x.p, w.p, bias.p, s.B, s.T, s.C, s.K, part.p, stream);
    });
    double flop = 2.0 * n * s.K;
    std::printf("[ bench    ] causal conv %s %s: forward %.3f ms (%.0f GFLOP/s), backward %.3f ms (%.0f GFLOP/s)\n",
                what, describe(s).c_str(), fwd, flop / fwd * 1e-6, bwd, 3 * flop / bwd * 1e-6);
    RecordProperty(std::string(what) + " " + describe(s) + "forward_ms", std::to_string(fwd));
    RecordProperty(std::string(what) + " " + describe(s) + "backward_ms", std::to_string(bwd));
    for (const V& v : {host_floats(y.get()), host_floats(dx.get()), dw.get()})
      for (float f : v) ASSERT_TRUE(std::isfinite(f)) << what;
  };
  run(float(), {16, 2048, 320, 256}, "fp32");
  run(bf16(), {16, 2048, 320, 256}, "bf16");
  run(float(), {16, 2048, 512, 4}, "fp32");
  run(bf16(), {16, 2048, 512, 4}, "bf16");

  Shape s{256, 1, 320, 256};
  size_t n = (size_t)s.B * s.C;
  Dev<float> x(random_floats(n, rng)), y(n), w(random_floats((size_t)s.C * s.K, rng, 1.0 / 16)), bias(V(s.C, 0.f)),
      state(random_floats((size_t)s.B * (s.K - 1) * s.C, rng));
  float step = time_ms([&] { causal_conv_forward_cuda(y.p, x.p, w.p, bias.p, s.B, 1, s.C, s.K, state.p, stream); });
  std::printf("[ bench    ] causal conv step fp32 %s: %.3f ms (state read and shifted: %.0f GB/s)\n",
              describe(s).c_str(), step, 3.0 * s.B * (s.K - 1) * s.C * 4 / step * 1e-6);
  RecordProperty("step " + describe(s) + "ms", std::to_string(step));
  for (float f : y.get()) ASSERT_TRUE(std::isfinite(f));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

#endif  // BYTELM_WITH_CUDA
