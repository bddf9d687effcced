// CUDA causal attention (layers/attention_cuda.h) against the CPU reference run in double. Suite CudaAttention
// carries the ctest label `cuda`; every test skips without a CUDA device, and in builds without CUDA.
//
// Every output is poisoned with NaN (all-ones bytes) first, so an element a kernel fails to write fails the
// comparison. Errors are norm-wise, ||out - ref|| / ||ref||, per tensor:
//  - fp32 storage (the plain kernel, fp32 arithmetic throughout): below 1e-5.
//  - bf16 storage: inputs are rounded to bf16 first and the reference runs on the same rounded values (the
//    backward's o too), so what remains is the kernels' own rounding: o, dq, dk, dv are stored in bf16 (2^-9
//    relative each) and P and dS are rounded to bf16 once as operands of the second products. Bound 1e-2, as the
//    other bf16 layers. lse and delta are fp32 sums of exact bf16 products: 1e-5.
#include <gtest/gtest.h>

#ifdef BYTELM_WITH_CUDA

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "core/bf16.h"
#include "core/cuda_check.h"
#include "core/device_buffer.h"
#include "core/error.h"
#include "core/rng.h"
#include "layers/attention.h"
#include "layers/attention_cuda.h"

using namespace bytelm;
using V = std::vector<float>;
using D = std::vector<double>;

namespace {

constexpr double kFp32Tol = 1e-5, kBf16Tol = 1e-2, kStatTol = 1e-5;

// The host value of x as storage type A holds it (bf16 keeps 8 mantissa bits).
template <class A>
float representable(float x) {
  if constexpr (std::is_same_v<A, bf16>) return __bfloat162float(__float2bfloat16(x));
  return x;
}

template <class A>
V random_values(size_t n, Rng& rng, double scale = 1.0) {
  V v(n);
  for (float& x : v) x = representable<A>(float(rng.normal() * scale));
  return v;
}

template <class A>
DeviceBuffer<A> upload(const V& v) {
  std::vector<A> a(v.size());
  for (size_t i = 0; i < v.size(); i++) a[i] = (A)v[i];
  DeviceBuffer<A> d;
  d.assign_zero(v.size());
  BYTELM_CUDA_CHECK(cudaMemcpy(d.data(), a.data(), sizeof(A) * a.size(), cudaMemcpyHostToDevice));
  return d;
}

// n elements of all-ones bytes: NaN as float and as bf16.
template <class A>
DeviceBuffer<A> poisoned(size_t n) {
  DeviceBuffer<A> d;
  d.assign_zero(n);
  BYTELM_CUDA_CHECK(cudaMemset(d.data(), 0xFF, sizeof(A) * n));
  return d;
}

template <class A>
V download(const DeviceBuffer<A>& d) {
  std::vector<A> a(d.size());
  BYTELM_CUDA_CHECK(cudaDeviceSynchronize());
  BYTELM_CUDA_CHECK(cudaMemcpy(a.data(), d.data(), sizeof(A) * a.size(), cudaMemcpyDeviceToHost));
  V v(a.size());
  for (size_t i = 0; i < a.size(); i++) v[i] = (float)a[i];
  return v;
}

D to_double(const V& v) { return D(v.begin(), v.end()); }

// ||out - ref|| / ||ref|| in double; any NaN makes it NaN, which fails every EXPECT_LT.
double rel_err(const V& out, const D& ref) {
  if (out.size() != ref.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    double e = out[i] - ref[i];
    num += e * e;
    den += ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

struct Case {
  int B, T, H, Dh;
  bool packed;  // q, k, v (and dq, dk, dv) in one [B, T, 3, H, Dh] buffer, row stride 3 H Dh (+ pad)
  int pad = 0;  // extra elements a packed row: 4 leaves rows only 8-byte aligned
  double q_scale = 1.0;  // scores grow with it: a peakier softmax
  std::string name() const {
    return "B=" + std::to_string(B) + " T=" + std::to_string(T) + " H=" + std::to_string(H) +
           " Dh=" + std::to_string(Dh) + (packed ? " packed" : " dense") + (pad ? " pad=" + std::to_string(pad) : "");
  }
};

// Where q, k, v (or dq, dk, dv) of a case live: one packed buffer or three dense ones, all of `size` elements.
struct Layout {
  AttentionShape s;
  size_t size;
  int buffers;
  size_t offset(int i) const { return buffers == 1 ? (size_t)i * s.H * s.Dh : 0; }
  explicit Layout(const Case& c) {
    s = AttentionShape{c.B, c.T, c.H, c.Dh, c.packed ? 3 * c.H * c.Dh + c.pad : 0};
    size = (size_t)c.B * c.T * s.stride();
    buffers = c.packed ? 1 : 3;
  }
  // Tensor i (0 q, 1 k, 2 v) of host buffers `bufs` as a dense [B, T, H, Dh] array.
  V dense(const std::vector<V>& bufs, int i) const {
    const V& buf = bufs[buffers == 1 ? 0 : i];
    const int D = s.H * s.Dh;
    V out((size_t)s.B * s.T * D);
    for (size_t row = 0; row < (size_t)s.B * s.T; row++)
      for (int j = 0; j < D; j++) out[row * D + j] = buf[offset(i) + row * s.stride() + j];
    return out;
  }
};

template <class A>
const A* at(const std::vector<DeviceBuffer<A>>& bufs, const Layout& l, int i) {
  return bufs[l.buffers == 1 ? 0 : i].data() + l.offset(i);
}
template <class A>
A* at(std::vector<DeviceBuffer<A>>& bufs, const Layout& l, int i) {
  return bufs[l.buffers == 1 ? 0 : i].data() + l.offset(i);
}

class CudaAttention : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
    BYTELM_CUDA_CHECK(cudaStreamCreate(&stream));
  }
  void TearDown() override {
    if (stream) cudaStreamDestroy(stream);
  }
  void expect_close(const std::string& what, const V& out, const D& ref, double tol) {
    double e = rel_err(out, ref);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", e);
    RecordProperty(tag + what, buf);
    EXPECT_LT(e, tol) << what << ": relative error " << e;
  }
  template <class A>
  void check_case(const Case& c);
  std::string tag;
  cudaStream_t stream = nullptr;
};

// Forward and backward of one case against the double reference, and the backward run twice to the bit.
template <class A>
void CudaAttention::check_case(const Case& c) {
  SCOPED_TRACE(c.name());
  tag = c.name() + " ";
  constexpr bool kBf16 = std::is_same_v<A, bf16>;
  const double tol = kBf16 ? kBf16Tol : kFp32Tol;
  Layout lay(c);
  const AttentionShape s = lay.s;
  const size_t n_dense = (size_t)c.B * c.T * c.H * c.Dh, n_rows = (size_t)c.B * c.H * c.T;
  const float scale = 1.f / std::sqrt((float)c.Dh);
  Rng rng(1000 + c.T * 7 + c.Dh + c.packed);

  std::vector<V> qkv;
  for (int i = 0; i < lay.buffers; i++) qkv.push_back(random_values<A>(lay.size, rng));
  for (size_t row = 0; row < (size_t)c.B * c.T; row++)  // q alone
    for (int j = 0; j < c.H * c.Dh; j++) {
      float& x = qkv[0][lay.offset(0) + row * s.stride() + j];
      x = representable<A>(float(x * c.q_scale));
    }
  V dout = random_values<A>(n_dense, rng);

  // the reference in double on the dense copies
  D q = to_double(lay.dense(qkv, 0)), k = to_double(lay.dense(qkv, 1)), v = to_double(lay.dense(qkv, 2));
  D o_ref(n_dense), lse_ref(n_rows);
  attention_forward(o_ref.data(), lse_ref.data(), q.data(), k.data(), v.data(), AttentionShape{c.B, c.T, c.H, c.Dh},
                    (double)scale);
  V o_in(n_dense), lse_in(n_rows);  // what the backward reads: the reference's o and lse as the device stores them
  for (size_t i = 0; i < n_dense; i++) o_in[i] = representable<A>((float)o_ref[i]);
  for (size_t i = 0; i < n_rows; i++) lse_in[i] = (float)lse_ref[i];
  D dq_ref(n_dense), dk_ref(n_dense), dv_ref(n_dense), delta_ref(n_rows), o_in_d = to_double(o_in),
      lse_in_d = to_double(lse_in), dout_d = to_double(dout);
  attention_backward(dq_ref.data(), dk_ref.data(), dv_ref.data(), delta_ref.data(), dout_d.data(), q.data(), k.data(),
                     v.data(), o_in_d.data(), lse_in_d.data(), AttentionShape{c.B, c.T, c.H, c.Dh}, (double)scale);

  std::vector<DeviceBuffer<A>> qkv_dev;
  for (const V& b : qkv) qkv_dev.push_back(upload<A>(b));
  DeviceBuffer<A> o_dev = poisoned<A>(n_dense), dout_dev = upload<A>(dout), o_in_dev = upload<A>(o_in);
  DeviceBuffer<float> lse_dev = poisoned<float>(n_rows), lse_in_dev = upload<float>(lse_in);
  attention_forward_cuda(o_dev.data(), lse_dev.data(), at(qkv_dev, lay, 0), at(qkv_dev, lay, 1), at(qkv_dev, lay, 2),
                         s, scale, stream);
  expect_close("o", download(o_dev), o_ref, tol);
  expect_close("lse", download(lse_dev), lse_ref, kStatTol);

  auto backward = [&](std::vector<DeviceBuffer<A>>& grads, DeviceBuffer<float>& delta) {
    for (int i = 0; i < lay.buffers; i++) grads.push_back(poisoned<A>(lay.size));
    delta = poisoned<float>(n_rows);
    attention_backward_cuda(at(grads, lay, 0), at(grads, lay, 1), at(grads, lay, 2), delta.data(), dout_dev.data(),
                            at(qkv_dev, lay, 0), at(qkv_dev, lay, 1), at(qkv_dev, lay, 2), o_in_dev.data(),
                            lse_in_dev.data(), s, scale, stream);
  };
  std::vector<DeviceBuffer<A>> grads, grads2;
  DeviceBuffer<float> delta, delta2;
  backward(grads, delta);
  backward(grads2, delta2);
  std::vector<V> g, g2;
  for (int i = 0; i < lay.buffers; i++) g.push_back(download(grads[i])), g2.push_back(download(grads2[i]));
  expect_close("delta", download(delta), delta_ref, kStatTol);
  expect_close("dq", lay.dense(g, 0), dq_ref, tol);
  expect_close("dk", lay.dense(g, 1), dk_ref, tol);
  expect_close("dv", lay.dense(g, 2), dv_ref, tol);
  for (int i = 0; i < lay.buffers; i++)  // memcmp: the unwritten padding of a padded layout is NaN in both
    EXPECT_EQ(std::memcmp(g[i].data(), g2[i].data(), sizeof(float) * g[i].size()), 0)
        << "the backward differs between two runs (buffer " << i << ")";
}

}  // namespace

TEST_F(CudaAttention, Fp32MatchesReference) {
  // odd T (partial tiles), one position, B * H > 1, packed and dense, Dh 64 and 128 and one the tensor cores skip
  for (const Case& c : {Case{2, 37, 3, 64, false}, Case{1, 130, 2, 128, true}, Case{2, 1, 2, 64, true},
                        Case{1, 45, 2, 40, true, 0, 3.0}})
    check_case<float>(c);
}

TEST_F(CudaAttention, Bf16MatchesReference) {
  const Case tensor_core_cases[] = {
      Case{2, 37, 3, 64, false},         // one partial tile
      Case{1, 130, 2, 128, true},        // three query tiles, the last of 2 rows
      Case{2, 1, 2, 64, true},           // one position
      Case{1, 200, 2, 64, true, 0, 3.0}, // peaky softmax over four tiles
      Case{1, 257, 1, 128, false, 0, 2.0},
  };
  for (const Case& c : tensor_core_cases) {
    EXPECT_TRUE(attention_uses_tensor_cores(Layout(c).s)) << c.name();
    check_case<bf16>(c);
  }
  // the plain kernel serves bf16 at other head dims and unaligned rows
  for (const Case& c : {Case{1, 37, 2, 32, true}, Case{1, 70, 2, 64, true, 4}}) {
    EXPECT_FALSE(attention_uses_tensor_cores(Layout(c).s)) << c.name();
    check_case<bf16>(c);
  }
}

// T = 4096 with large scores (q scaled by 4): lse and o stay finite everywhere and match a double reference on a
// few rows; the backward stays finite too.
template <class A>
void check_long(int Dh, cudaStream_t stream) {
  SCOPED_TRACE("Dh=" + std::to_string(Dh) + (std::is_same_v<A, bf16> ? " bf16" : " fp32"));
  const int B = 1, T = 4096, H = 2, ld = 3 * H * Dh;
  const float scale = 1.f / std::sqrt((float)Dh);
  const AttentionShape s{B, T, H, Dh, ld};
  Rng rng(2000 + Dh);
  V qkv = random_values<A>((size_t)T * ld, rng), dout = random_values<A>((size_t)T * H * Dh, rng);
  for (int t = 0; t < T; t++)
    for (int j = 0; j < H * Dh; j++) qkv[(size_t)t * ld + j] = representable<A>(4 * qkv[(size_t)t * ld + j]);
  DeviceBuffer<A> qkv_dev = upload<A>(qkv), dout_dev = upload<A>(dout), o_dev = poisoned<A>((size_t)T * H * Dh),
                  grads = poisoned<A>((size_t)T * ld);
  DeviceBuffer<float> lse_dev = poisoned<float>((size_t)H * T), delta = poisoned<float>((size_t)H * T);
  const A* q = qkv_dev.data();
  attention_forward_cuda(o_dev.data(), lse_dev.data(), q, q + H * Dh, q + 2 * H * Dh, s, scale, stream);
  V o = download(o_dev), lse = download(lse_dev);
  size_t bad = 0;
  for (float x : o) bad += !std::isfinite(x);
  for (float x : lse) bad += !std::isfinite(x);
  EXPECT_EQ(bad, 0u) << "non-finite or unwritten o / lse elements";
  const double tol = std::is_same_v<A, bf16> ? kBf16Tol : kFp32Tol;
  for (int h = 0; h < H; h++)
    for (int t : {0, 1, 63, 64, 1000, 2047, 4095}) {
      // one row in double: o_t = sum_j softmax_j(scale q_t . k_j) v_j
      auto el = [&](int which, int row, int i) { return (double)qkv[(size_t)row * ld + which * H * Dh + h * Dh + i]; };
      D x(t + 1), ot(Dh, 0.0);
      double m = -INFINITY, z = 0;
      for (int j = 0; j <= t; j++) {
        double d = 0;
        for (int i = 0; i < Dh; i++) d += el(0, t, i) * el(1, j, i);
        m = std::max(m, x[j] = scale * d);
      }
      for (int j = 0; j <= t; j++) z += x[j] = std::exp(x[j] - m);
      for (int j = 0; j <= t; j++)
        for (int i = 0; i < Dh; i++) ot[i] += x[j] / z * el(2, j, i);
      V got(o.begin() + ((size_t)t * H + h) * Dh, o.begin() + ((size_t)t * H + h + 1) * Dh);
      EXPECT_LT(rel_err(got, ot), tol) << "o at h=" << h << " t=" << t;
      double lse_ref = m + std::log(z);
      EXPECT_NEAR(lse[(size_t)h * T + t], lse_ref, 1e-5 * std::max(1.0, std::fabs(lse_ref))) << "h=" << h << " t=" << t;
    }
  attention_backward_cuda(grads.data(), grads.data() + H * Dh, grads.data() + 2 * H * Dh, delta.data(),
                          dout_dev.data(), q, q + H * Dh, q + 2 * H * Dh, o_dev.data(), lse_dev.data(), s, scale,
                          stream);
  bad = 0;
  for (float x : download(grads)) bad += !std::isfinite(x);
  EXPECT_EQ(bad, 0u) << "non-finite or unwritten gradient elements";
}

TEST_F(CudaAttention, LongSequenceStaysFinite) {
  check_long<bf16>(64, stream);
  check_long<bf16>(128, stream);
  check_long<float>(64, stream);
}

TEST_F(CudaAttention, RefusesBadShapes) {
  DeviceBuffer<bf16> buf = poisoned<bf16>(4096);
  DeviceBuffer<float> f = poisoned<float>(64);
  bf16* p = buf.data();
  EXPECT_THROW(attention_forward_cuda(p, f.data(), p, p, p, AttentionShape{1, 2, 1, 300}, 1.f, stream), Error);
  EXPECT_THROW(attention_forward_cuda(p, f.data(), p, p, p, AttentionShape{1, 2, 2, 64, 100}, 1.f, stream), Error);
  EXPECT_THROW(attention_backward_cuda(p, p, p, f.data(), p, p, p, p, p, f.data(), AttentionShape{1, 0, 1, 64}, 1.f,
                                       stream),
               Error);
}

#else  // built without CUDA: the same tests, skipped

#define BYTELM_CUDA_SKIPPED(name) \
  TEST(CudaAttention, name) { GTEST_SKIP() << "built without CUDA (no nvcc at configure time)"; }
BYTELM_CUDA_SKIPPED(Fp32MatchesReference)
BYTELM_CUDA_SKIPPED(Bf16MatchesReference)
BYTELM_CUDA_SKIPPED(LongSequenceStaysFinite)
BYTELM_CUDA_SKIPPED(RefusesBadShapes)
#undef BYTELM_CUDA_SKIPPED

#endif
