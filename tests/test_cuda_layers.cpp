// CUDA layers against the CPU reference in fp32, and bit-reproducibility of the
// backward passes. Suite CudaLayers carries the ctest label `cuda`; every test
// skips when there is no CUDA device, and in builds without CUDA. The buffers,
// errors and tolerances are cuda_testing.h's.
#include <gtest/gtest.h>

#ifdef BYTELM_WITH_CUDA

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/bf16.h"
#include "core/cuda_check.h"
#include "core/error.h"
#include "core/rng.h"
#include "cuda_testing.h"
#include "layers/cross_entropy.h"
#include "layers/cross_entropy_cuda.h"
#include "layers/diag_ssm.h"
#include "layers/diag_ssm_cuda.h"
#include "layers/embedding.h"
#include "layers/embedding_cuda.h"
#include "layers/layernorm.h"
#include "layers/layernorm_cuda.h"
#include "layers/linear.h"
#include "layers/linear_cuda.h"
#include "layers/patch.h"
#include "layers/patch_attn.h"
#include "layers/patch_attn_cuda.h"
#include "layers/patch_cuda.h"
#include "layers/swiglu.h"
#include "layers/swiglu_cuda.h"
#include "models/cuda_ops.h"
#include "train/adamw_cuda.h"

using namespace bytelm;
using namespace bytelm::testing;

namespace {

class CudaLayers : public CudaTest {
 protected:
  // The decay a = exp(-softplus(lam)) per channel as the device and as the host compute
  // it: one scan step from h0 = 1 with u = 0 gives h = a exactly on both.
  V device_decay(const V& lam) {
    int d = (int)lam.size();
    Dev<float> u_d(V(d, 0.f)), lam_d(lam), h0_d(V(d, 1.f)), a_d(d);
    diag_scan_forward_cuda(a_d.poison().p, u_d.p, lam_d.p, 1, 1, d, h0_d.p, (float*)nullptr, stream);
    return a_d.get();
  }
  static V host_decay(const V& lam) {
    int d = (int)lam.size();
    V u(d, 0.f), h0(d, 1.f), a(d);
    diag_scan_forward(a.data(), u.data(), lam.data(), 1, 1, d, h0.data());
    return a;
  }
  // Nudges each lam by float ulps until host and device compute the same a. They can
  // differ by an ulp or two where libm's expf/log1pf are not correctly rounded (the
  // device's stages are), and for a near 1 one ulp of a moves the scan output by about
  // ulp/(1-a), 5e-4 relative at a = 1 - 1e-4: that would swamp the error of the scan
  // itself, which is what the comparisons check. ScanDecayMatchesHost bounds the gap.
  V host_device_agreeing(V lam) {
    for (int round = 0; round < 100; round++) {
      V dev = device_decay(lam), host = host_decay(lam);
      int differ = 0;
      for (size_t c = 0; c < lam.size(); c++)
        if (std::memcmp(&dev[c], &host[c], sizeof(float)) != 0) lam[c] = std::nextafter(lam[c], 100.f), differ++;
      if (differ == 0) return lam;
    }
    ADD_FAILURE() << "host and device decays never agreed";
    return lam;
  }

  // LayerNorm forward and backward (dx written, and accumulated onto dx0) in storage A against the CPU in fp32 on
  // the same (for bf16, rounded) inputs; dx within tol, the fp32 statistics and column sums within kTol.
  template <class A>
  void check_layernorm(int N, int C, Rng& rng, double tol) {
    constexpr bool kBf16 = std::is_same_v<A, bf16>;
    auto input = [](V v) { return kBf16 ? round_bf16(std::move(v)) : v; };
    auto store = [](const V& v) {
      if constexpr (kBf16) return to_bf16(v);
      else return v;
    };
    auto load = [](const std::vector<A>& v) {
      if constexpr (kBf16) return to_float(v);
      else return v;
    };
    V x = input(random_floats(N * C, rng, 2.0, 0.5)), w = random_floats(C, rng, 1.0, 1.0), b = random_floats(C, rng);
    V dy = input(random_floats(N * C, rng)), dw0 = random_floats(C, rng), db0 = random_floats(C, rng);
    V dx0 = input(random_floats(N * C, rng));
    V y_ref(N * C), mean_ref(N), rstd_ref(N), dx_ref(N * C), dw_ref = dw0, db_ref = db0, dx_acc_ref = dx0;
    layernorm_forward(y_ref.data(), mean_ref.data(), rstd_ref.data(), x.data(), w.data(), b.data(), N, C);
    layernorm_backward(dx_ref.data(), dw_ref.data(), db_ref.data(), dy.data(), x.data(), mean_ref.data(),
                       rstd_ref.data(), w.data(), N, C, false);
    V dw_unused = dw0, db_unused = db0;
    layernorm_backward(dx_acc_ref.data(), dw_unused.data(), db_unused.data(), dy.data(), x.data(), mean_ref.data(),
                       rstd_ref.data(), w.data(), N, C, true);

    Dev<A> x_d(store(x)), dy_d(store(dy)), y_d(N * C), dx_d(N * C), dx2_d(store(dx0));
    Dev<float> w_d(w), b_d(b), mean_d(N), rstd_d(N), dw_d(dw0), db_d(db0), dw2_d(dw0), db2_d(db0),
        part_d(layernorm_backward_cuda_partials(N, C));
    layernorm_forward_cuda(y_d.poison().p, mean_d.poison().p, rstd_d.poison().p, x_d.p, w_d.p, b_d.p, N, C, stream);
    layernorm_backward_cuda(dx_d.poison().p, dw_d.p, db_d.p, dy_d.p, x_d.p, mean_d.p, rstd_d.p, w_d.p, N, C, false,
                            part_d.poison().p, stream);
    layernorm_backward_cuda(dx2_d.p, dw2_d.p, db2_d.p, dy_d.p, x_d.p, mean_d.p, rstd_d.p, w_d.p, N, C, true,
                            part_d.poison().p, stream);
    expect_close("y", load(y_d.get()), y_ref, tol);
    expect_close("mean", mean_d.get(), mean_ref);  // fp32 statistics of the same inputs
    expect_close("rstd", rstd_d.get(), rstd_ref);
    expect_close("dx", load(dx_d.get()), dx_ref, tol);
    expect_close("dw", dw_d.get(), dw_ref);
    expect_close("db", db_d.get(), db_ref);
    expect_close("dx accumulated", load(dx2_d.get()), dx_acc_ref, tol);
  }
};

}  // namespace

TEST_F(CudaLayers, Linear) {
  Rng rng(101);
  int N = 37, in = 48, out = 29;
  V x = random_floats(N * in, rng), W = random_floats(out * in, rng, 0.3), dy = random_floats(N * out, rng);
  V dW0 = random_floats(out * in, rng), dx0 = random_floats(N * in, rng);
  V y_ref(N * out), dW_ref = dW0, dx_ref(N * in), dx_acc_ref = dx0, dW_acc_ref = dW0;
  linear_forward(y_ref.data(), x.data(), W.data(), N, in, out);
  linear_backward(dx_ref.data(), dW_ref.data(), dy.data(), x.data(), W.data(), N, in, out, false);
  linear_backward(dx_acc_ref.data(), dW_acc_ref.data(), dy.data(), x.data(), W.data(), N, in, out, true);

  // _d: device buffers
  Dev<float> x_d(x), W_d(W), dy_d(dy), y_d(N * out), dW_d(dW0), dx_d(N * in), dW2_d(dW0), dx2_d(dx0), dW3_d(dW0);
  linear_forward_cuda(y_d.poison().p, x_d.p, W_d.p, N, in, out, Gemm{handle}, stream);
  linear_backward_cuda(dx_d.poison().p, dW_d.p, dy_d.p, x_d.p, W_d.p, N, in, out, false, Gemm{handle}, stream);
  linear_backward_cuda(dx2_d.p, dW2_d.p, dy_d.p, x_d.p, W_d.p, N, in, out, true, Gemm{handle}, stream);
  linear_backward_cuda((float*)nullptr, dW3_d.p, dy_d.p, x_d.p, W_d.p, N, in, out, false, Gemm{handle}, stream);
  expect_close("y", y_d.get(), y_ref);
  expect_close("dx", dx_d.get(), dx_ref);
  expect_close("dW", dW_d.get(), dW_ref);
  expect_close("dx accumulate", dx2_d.get(), dx_acc_ref);
  expect_close("dW (accumulate call)", dW2_d.get(), dW_acc_ref);
  expect_close("dW (dx null)", dW3_d.get(), dW_ref);
}

// Row-major D = C + op(A) op(B) on the host, in double; lda/ldb/ldc are the host matrices' row lengths.
static V gemm_rows_add_ref(bool ta, bool tb, int M, int N, int K, const V& a, int lda, const V& b, int ldb,
                           const V& c, int ldc) {
  V d((size_t)M * N);
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = c[(size_t)i * ldc + j];
      for (int k = 0; k < K; k++)
        s += (double)(ta ? a[(size_t)k * lda + i] : a[(size_t)i * lda + k]) *
             (tb ? b[(size_t)j * ldb + k] : b[(size_t)k * ldb + j]);
      d[(size_t)i * N + j] = (float)s;
    }
  return d;
}

// The cuBLASLt product with C != D: every transpose, odd sizes (unaligned rows: the heuristic must pick an algorithm
// that copes), C read at another leading dimension than D is written at, C == D in place, and a second call (the
// cached plan) giving the same bits; fp32 and bf16.
TEST_F(CudaLayers, GemmRowsAdd) {
  Rng rng(111);
  for (int shape = 0; shape < 2; shape++) {
    int M = shape ? 64 : 37, N = shape ? 48 : 29, K = shape ? 80 : 51;
    for (int t = 0; t < 4; t++) {
      bool ta = t & 1, tb = t & 2;
      int lda = ta ? M : K, ldb = tb ? K : N, ldc = N + 3;
      V a = random_floats((size_t)M * K, rng), b = random_floats((size_t)K * N, rng), c = random_floats((size_t)M * ldc, rng);
      V ref = gemm_rows_add_ref(ta, tb, M, N, K, a, lda, b, ldb, c, ldc);
      tag = "M" + std::to_string(M) + (ta ? " aT" : " a") + (tb ? " bT " : " b ");
      Dev<float> a_d(a), b_d(b), c_d(c), d_d((size_t)M * N);
      gemm_rows_add_cuda(ta, tb, M, N, K, a_d.p, lda, b_d.p, ldb, c_d.p, ldc, d_d.poison().p, N, gemm(), stream);
      V first = d_d.get();
      expect_close("fp32", first, ref);
      gemm_rows_add_cuda(ta, tb, M, N, K, a_d.p, lda, b_d.p, ldb, c_d.p, ldc, d_d.poison().p, N, gemm(), stream);
      EXPECT_TRUE(bit_equal(d_d.get(), first)) << tag << "a second call (the cached plan) differs";
      EXPECT_TRUE(bit_equal(c_d.get(), c)) << tag << "C must stay as it was";
      // in place: D = C at C's leading dimension
      gemm_rows_add_cuda(ta, tb, M, N, K, a_d.p, lda, b_d.p, ldb, c_d.p, ldc, c_d.p, ldc, gemm(), stream);
      V in_place = c_d.get(), rows((size_t)M * N);
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) rows[(size_t)i * N + j] = in_place[(size_t)i * ldc + j];
      expect_close("fp32 in place", rows, ref);
      // bf16: inputs rounded first, the reference on the rounded values; D rounded once
      V ab = round_bf16(a), bb = round_bf16(b), cb = round_bf16(c);
      V ref_b = gemm_rows_add_ref(ta, tb, M, N, K, ab, lda, bb, ldb, cb, ldc);
      Dev<bf16> ab_d(to_bf16(ab)), bb_d(to_bf16(bb)), cb_d(to_bf16(cb)), db_d((size_t)M * N);
      gemm_rows_add_cuda(ta, tb, M, N, K, ab_d.p, lda, bb_d.p, ldb, cb_d.p, ldc, db_d.poison().p, N, gemm(), stream);
      expect_close("bf16", to_float(db_d.get()), ref_b, 4e-3);  // one bf16 rounding of D: <= 2^-9 relative
    }
  }
  tag.clear();
  Dev<float> a_d(16), d_d(16);
  EXPECT_THROW(gemm_rows_add_cuda(false, false, 4, 4, 4, a_d.p, 4, a_d.p, 4, a_d.p, 4, d_d.p, 4, Gemm{handle}, stream),
               Error)
      << "no cuBLASLt handle: a clear error";
}

TEST_F(CudaLayers, LayerNorm) {
  // Widths from 1 to 16 packs a lane (so every block shape of the backward); all but the first have more rows
  // than the backward has warps, so warps stride over rows and add several into their partial sums. C = 1100
  // takes the backward's blocks of up to 1024 threads, the others those of up to 256.
  for (auto [N, C] : {std::pair{37, 48}, std::pair{3001, 130}, std::pair{20000, 260}, std::pair{5000, 520},
                      std::pair{3000, 1100}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C));
    tag = "N=" + std::to_string(N) + " ";
    Rng rng(102 + N);
    check_layernorm<float>(N, C, rng, kTol);
  }
}

// The ssm block's fused residual sum + LayerNorm, and the skip's backward fused with the LayerNorm that made z,
// against the CPU at the LayerNorm test's widths (every block shape, rows strided over warps), and in place (q
// over y).
TEST_F(CudaLayers, SkipLayerNorm) {
  for (auto [N, C] :
       {std::pair{37, 48}, std::pair{3001, 130}, std::pair{20000, 260}, std::pair{5000, 520}, std::pair{3000, 1100}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C));
    tag = "N=" + std::to_string(N) + " ";
    Rng rng(120 + N);
    V x = random_floats(N * C, rng, 2.0, 0.5), y = random_floats(N * C, rng), D = random_floats(C, rng),
      w = random_floats(C, rng, 1.0, 1.0), b = random_floats(C, rng);
    V z(N * C), zmean(N), zrstd(N);  // z = LN(x), as in the block
    layernorm_forward(z.data(), zmean.data(), zrstd.data(), x.data(), w.data(), b.data(), N, C);
    V q_ref(N * C), out_ref(N * C), mean_ref(N), rstd_ref(N);
    skip_layernorm_forward(q_ref.data(), out_ref.data(), mean_ref.data(), rstd_ref.data(), x.data(), y.data(), z.data(),
                           D.data(), w.data(), b.data(), N, C);
    V g = random_floats(N * C, rng), dz0 = random_floats(N * C, rng), dD0 = random_floats(C, rng),
      dw0 = random_floats(C, rng), db0 = random_floats(C, rng);
    V dx_ref = g, dz_sum = dz0, dD_ref = dD0, dw_ref = dw0, db_ref = db0;
    skip_sum_layernorm_backward(dx_ref.data(), dw_ref.data(), db_ref.data(), dD_ref.data(), dz_sum.data(), x.data(),
                                z.data(), D.data(), zmean.data(), zrstd.data(), w.data(), N, C);

    Dev<float> x_d(x), y_d(y), z_d(z), D_d(D), w_d(w), b_d(b), q_d(N * C), out_d(N * C), mean_d(N), rstd_d(N),
        zmean_d(zmean), zrstd_d(zrstd), dx_d(g), dz_d(dz0), dD_d(dD0), dw_d(dw0), db_d(db0),
        part_d(layernorm_backward_cuda_partials(N, C));
    skip_layernorm_forward_cuda(q_d.poison().p, out_d.poison().p, mean_d.poison().p, rstd_d.poison().p, x_d.p, y_d.p,
                                z_d.p, D_d.p, w_d.p, b_d.p, N, C, stream);
    skip_sum_layernorm_backward_cuda(dx_d.p, dw_d.p, db_d.p, dD_d.p, dz_d.p, x_d.p, z_d.p, D_d.p, zmean_d.p,
                                     zrstd_d.p, w_d.p, N, C, part_d.poison().p, stream);
    expect_close("q", q_d.get(), q_ref);
    expect_close("out", out_d.get(), out_ref);
    expect_close("mean", mean_d.get(), mean_ref);
    expect_close("rstd", rstd_d.get(), rstd_ref);
    expect_close("dx", dx_d.get(), dx_ref);
    expect_close("dw", dw_d.get(), dw_ref);
    expect_close("db", db_d.get(), db_ref);
    expect_close("dD", dD_d.get(), dD_ref);
    EXPECT_EQ(dz_d.get(), dz0) << "dz is only read";
    // in place: q written over y
    Dev<float> yq_d(y), out2_d(N * C);
    skip_layernorm_forward_cuda(yq_d.p, out2_d.poison().p, mean_d.p, rstd_d.p, x_d.p, yq_d.p, z_d.p, D_d.p, w_d.p,
                                b_d.p, N, C, stream);
    expect_close("q in place", yq_d.get(), q_ref);
    expect_close("out in place", out2_d.get(), out_ref);
  }
}

// The device's decay a = exp(-softplus(lam)) follows the host's float stages, each
// correctly rounded. Host libms round some of them an ulp off, and one ulp of the
// softplus moves a by up to (1 + softplus) ulps. For near-1 decays (lam <= -2, a >= 0.88)
// both must agree to the bit: there an ulp of a moves the scan output by ulp/(1-a),
// so a GPU-trained model would read differently on the CPU.
TEST_F(CudaLayers, ScanDecayMatchesHost) {
  Rng rng(103);
  int d = 512;
  V lam(d);
  for (int c = 0; c < d; c++) lam[c] = c < 80 ? -16.f + 0.5f * c : float(rng.normal() * 4);
  lam[d - 1] = 25.f;  // the softplus(lam) = lam branch
  V dev = device_decay(lam), host = host_decay(lam);
  int differ = 0, near_one_differ = 0;
  for (int c = 0; c < d; c++) {
    if (std::memcmp(&dev[c], &host[c], sizeof(float)) == 0) continue;
    differ++;
    double softplus = std::log1p(std::exp((double)lam[c]));
    EXPECT_LE(std::fabs(dev[c] - host[c]), 0x1p-21 * (1 + softplus) * host[c])
        << "lam " << lam[c] << ": device a " << dev[c] << ", host a " << host[c];
    if (lam[c] <= -2.f && near_one_differ++ < 5)
      ADD_FAILURE() << "near-1 decay differs at lam " << lam[c] << ": device a " << dev[c] << ", host a " << host[c];
  }
  RecordProperty("decays_not_bit_equal", std::to_string(differ) + " of " + std::to_string(d));
}

TEST_F(CudaLayers, DiagScan) {
  struct Case {
    int B, T, d;
    bool with_h0, near_one;
  };
  // T=131: a partial last span; T=5000: 20 spans of carries, with decays up to 1 - 1.2e-4
  // (half-lives of ~5600 steps) whose state crosses every chunk boundary. d=48 and 40 stage their spans by 16-byte
  // copies (a partial block of channels past d), d=37 (rows not 16-byte multiples) by plain loads.
  for (Case k : {Case{3, 131, 48, false, false}, Case{3, 131, 48, true, false}, Case{2, 5000, 40, true, true},
                 Case{2, 300, 37, true, false}}) {
    SCOPED_TRACE("B=" + std::to_string(k.B) + " T=" + std::to_string(k.T) + " h0=" + std::to_string(k.with_h0));
    Rng rng(104 + k.T + k.with_h0);
    int B = k.B, T = k.T, d = k.d;
    size_t n = (size_t)B * T * d;
    V u = random_floats(n, rng), lam = random_floats(d, rng), h0 = random_floats(B * d, rng);
    if (k.near_one)
      for (int c = 0; c < d; c += 2) lam[c] = -3.f - 6.f * c / d;  // a from 0.95 to 0.99988
    lam = host_device_agreeing(lam);
    tag = "T=" + std::to_string(T) + (k.with_h0 ? " h0 " : " ");
    V dh = random_floats(n, rng), dlam0 = random_floats(d, rng);
    V h_ref(n), du_ref = dh, dlam_ref = dlam0;
    const float* h0p = k.with_h0 ? h0.data() : nullptr;
    diag_scan_forward(h_ref.data(), u.data(), lam.data(), B, T, d, h0p);
    diag_scan_backward(du_ref.data(), dlam_ref.data(), u.data(), h_ref.data(), lam.data(), B, T, d);

    V last_ref(B * d);  // each sequence's last state, which h_last receives (in place of h0 when there is one)
    for (int b = 0; b < B; b++)
      for (int c = 0; c < d; c++) last_ref[b * d + c] = h_ref[((size_t)b * T + T - 1) * d + c];

    Dev<float> u_d(u), lam_d(lam), h0_d(h0), h_d(n), g_d(dh), dlam_d(dlam0), part_d(diag_scan_backward_cuda_partials(B, T, d)),
        last_d(B * d);
    float* h_last = k.with_h0 ? h0_d.p : last_d.poison().p;
    diag_scan_forward_cuda(h_d.poison().p, u_d.p, lam_d.p, B, T, d, k.with_h0 ? h0_d.p : nullptr, h_last, stream);
    diag_scan_backward_cuda(g_d.p, dlam_d.p, u_d.p, h_d.p, lam_d.p, B, T, d, part_d.poison().p, stream);
    expect_close("h", h_d.get(), h_ref);
    expect_close("h_last", k.with_h0 ? h0_d.get() : last_d.get(), last_ref);
    expect_close("du", g_d.get(), du_ref);
    expect_close("dlam", dlam_d.get(), dlam_ref);
  }
}

// The GPU ops pad a SwiGLU layer's weights in its forward and keep the copies for its backward (by W12): a backward
// with weights no forward has padded is a clear error, not a read of stale or missing copies.
TEST_F(CudaLayers, SwiGluBackwardNeedsItsForward) {
  CudaOps<float> ops(GemmPrecision::fp32);
  int N = 4, d = 16, H = 20, S = swiglu_stride_cuda(H);
  Dev<float> W12(2 * H * d), W3(d * H), x(N * d), dy(N * d), dx(N * d), g(N * 2 * S), m(N * S), y(N * d),
      scratch(N * 3 * S), dW12(2 * H * d), dW3(d * H);
  EXPECT_THROW(ops.swiglu_backward(dx.p, dW12.p, dW3.p, dy.p, x.p, g.p, m.p, W12.p, W3.p, N, d, H, scratch.p), Error);
  ops.swiglu_forward(y.p, g.p, m.p, x.p, W12.p, W3.p, N, d, H, nullptr);
  EXPECT_NO_THROW(ops.swiglu_backward(dx.p, dW12.p, dW3.p, dy.p, x.p, g.p, m.p, W12.p, W3.p, N, d, H, scratch.p));
  BYTELM_CUDA_CHECK(cudaStreamSynchronize(ops.stream()));
}

TEST_F(CudaLayers, DiagSsm) {
  Rng rng(105);
  int B = 3, T = 131, d = 48, N = B * T;
  size_t n = (size_t)N * d;
  V x = random_floats(n, rng), Win = random_floats(d * d, rng, 0.2), Wout = random_floats(d * d, rng, 0.2);
  V lam = host_device_agreeing(random_floats(d, rng)), h0 = random_floats(B * d, rng), dy = random_floats(n, rng);
  V gWin0 = random_floats(d * d, rng), glam0 = random_floats(d, rng), gWout0 = random_floats(d * d, rng);
  V y_ref(n), u_ref(n), h_ref(n), dx_ref(n), scratch(n), gWin = gWin0, glam = glam0, gWout = gWout0;
  diag_ssm_forward(y_ref.data(), u_ref.data(), h_ref.data(), x.data(),
                   DiagSsmWeights<float>{Win.data(), lam.data(), Wout.data()}, B, T, d, h0.data(), (float*)nullptr);
  diag_ssm_backward(dx_ref.data(), DiagSsmGrads<float>{gWin.data(), glam.data(), gWout.data()}, dy.data(), x.data(),
                    u_ref.data(), h_ref.data(), DiagSsmWeights<float>{Win.data(), lam.data(), Wout.data()}, B, T, d,
                    scratch.data());

  Dev<float> x_d(x), Win_d(Win), Wout_d(Wout), lam_d(lam), h0_d(h0), dy_d(dy), y_d(n), u_d(n), h_d(n), dx_d(n),
      scratch_d(n), part_d(diag_ssm_backward_cuda_partials(B, T, d)), gWin_d(gWin0), glam_d(glam0), gWout_d(gWout0);
  DiagSsmWeights<float> w{Win_d.p, lam_d.p, Wout_d.p};
  diag_ssm_forward_cuda(y_d.poison().p, u_d.poison().p, h_d.poison().p, x_d.p, w, B, T, d, h0_d.p, (float*)nullptr,
                        Gemm{handle}, stream);
  diag_ssm_backward_cuda(dx_d.poison().p, DiagSsmGrads<float>{gWin_d.p, glam_d.p, gWout_d.p}, dy_d.p, x_d.p, u_d.p,
                         h_d.p, w, B, T, d, scratch_d.poison().p, part_d.poison().p, Gemm{handle}, stream);
  expect_close("y", y_d.get(), y_ref);
  expect_close("u", u_d.get(), u_ref);
  expect_close("h", h_d.get(), h_ref);
  expect_close("dx", dx_d.get(), dx_ref);
  expect_close("dW_in", gWin_d.get(), gWin);
  expect_close("dlam", glam_d.get(), glam);
  expect_close("dW_out", gWout_d.get(), gWout);
}

TEST_F(CudaLayers, SwiGlu) {
  Rng rng(106);
  int N = 37, d = 48, H = 100;
  V x = random_floats(N * d, rng), W12 = random_floats(2 * H * d, rng, 0.2), W3 = random_floats(d * H, rng, 0.1);
  V dy = random_floats(N * d, rng), dW12_0 = random_floats(2 * H * d, rng), dW3_0 = random_floats(d * H, rng);
  V res = random_floats(N * d, rng);
  V y_ref(N * d), g_ref(N * 2 * H), m_ref(N * H), dx_ref(N * d), scratch(N * 3 * H), dW12 = dW12_0, dW3 = dW3_0;
  V y_plain_ref(N * d);
  swiglu_forward(y_plain_ref.data(), g_ref.data(), m_ref.data(), x.data(), W12.data(), W3.data(), N, d, H,
                 (const float*)nullptr);
  swiglu_forward(y_ref.data(), g_ref.data(), m_ref.data(), x.data(), W12.data(), W3.data(), N, d, H, res.data());
  swiglu_backward(dx_ref.data(), dW12.data(), dW3.data(), dy.data(), x.data(), g_ref.data(), m_ref.data(), W12.data(),
                  W3.data(), N, d, H, scratch.data());

  // the GPU keeps the hidden activations at a padded row stride S (see swiglu_cuda.h)
  int S = swiglu_stride_cuda(H);
  ASSERT_GT(S, H) << "pick an H that needs padding";
  Dev<float> x_d(x), W12_d(W12), W3_d(W3), dy_d(dy), res_d(res), y_d(N * d), y_plain_d(N * d), g_d(N * 2 * S),
      m_d(N * S), dx_d(N * d), scratch_d(N * 3 * S), padded_d(swiglu_padded_elems_cuda(d, H)),
      dw_scratch_d(swiglu_dw_scratch_floats_cuda(d, H)), dW12_d(dW12_0), dW3_d(dW3_0);
  // each forward writes the padded weight copies the backward reads
  swiglu_forward_cuda(y_plain_d.poison().p, g_d.poison().p, m_d.poison().p, x_d.p, W12_d.p, W3_d.p, N, d, H,
                      (const float*)nullptr, padded_d.poison().p, gemm(), stream);
  swiglu_forward_cuda(y_d.poison().p, g_d.poison().p, m_d.poison().p, x_d.p, W12_d.p, W3_d.p, N, d, H, res_d.p,
                      padded_d.poison().p, gemm(), stream);
  swiglu_backward_cuda(dx_d.poison().p, dW12_d.p, dW3_d.p, dy_d.p, x_d.p, g_d.p, m_d.p, padded_d.p, N, d, H,
                       scratch_d.poison().p, dw_scratch_d.poison().p, gemm(), stream);
  expect_close("y (no residual)", y_plain_d.get(), y_plain_ref);
  expect_close("y", y_d.get(), y_ref);
  V g_dev = g_d.get(), m_dev = m_d.get(), g_rows(N * 2 * H), m_rows(N * H);
  for (int i = 0; i < N; i++)
    for (int k = 0; k < H; k++) {
      g_rows[i * 2 * H + k] = g_dev[i * 2 * S + k];
      g_rows[i * 2 * H + H + k] = g_dev[i * 2 * S + S + k];
      m_rows[i * H + k] = m_dev[i * S + k];
    }
  for (int i = 0; i < N; i++)
    for (int k = H; k < S; k++) ASSERT_EQ(m_dev[i * S + k], 0.f) << "m's padding must be zero (it meets W3's zero padding)";
  expect_close("g", g_rows, g_ref);
  expect_close("m", m_rows, m_ref);
  expect_close("dx", dx_d.get(), dx_ref);
  expect_close("dW12", dW12_d.get(), dW12);
  expect_close("dW3", dW3_d.get(), dW3);
}

TEST_F(CudaLayers, Embedding) {
  // d = 200: four rows a block, the last block partial; d = 1100: two column blocks, the second partial
  for (auto [N, d] : {std::pair{1001, 200}, std::pair{37, 1100}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + " d=" + std::to_string(d));
    tag = "d=" + std::to_string(d) + " ";
    Rng rng(107 + d);
    Bytes x(N);
    for (auto& b : x) b = rng.next_u64() % 4 ? uint8_t(" etaoin"[rng.next_u64() % 7]) : uint8_t(rng.next_u64());
    x[0] = 0, x[N - 1] = 255;
    V E = random_floats(256 * d, rng), de = random_floats((size_t)N * d, rng), dE0 = random_floats(256 * d, rng);
    V e_ref((size_t)N * d), dE_ref = dE0;
    embedding_forward(e_ref.data(), x.data(), E.data(), N, d);
    embedding_backward(dE_ref.data(), de.data(), x.data(), N, d);

    Dev<uint8_t> x_d(x);
    Dev<float> E_d(E), de_d(de), e_d((size_t)N * d), dE_d(dE0),
        scratch_d(embedding_backward_cuda_scratch_bytes(N, sizeof(float)) / sizeof(float));
    embedding_forward_cuda(e_d.poison().p, x_d.p, E_d.p, N, d, stream);
    embedding_backward_cuda(dE_d.p, de_d.p, x_d.p, N, d, scratch_d.poison().p, Gemm{handle}, stream);
    EXPECT_TRUE(bit_equal(e_d.get(), e_ref)) << "the forward is a copy";
    expect_close("dE", dE_d.get(), dE_ref);  // a product: the same sums in another order
  }
}

TEST_F(CudaLayers, Patch) {
  struct Case {
    int B, T, P, d;
  };
  // odd T with a partial last patch; T < P - 1 (no complete patch, every byte reads start); P = 1.
  for (Case k : {Case{3, 131, 3, 48}, Case{2, 2, 4, 5}, Case{2, 7, 1, 33}}) {
    SCOPED_TRACE("B=" + std::to_string(k.B) + " T=" + std::to_string(k.T) + " P=" + std::to_string(k.P));
    tag = "T=" + std::to_string(k.T) + " P=" + std::to_string(k.P) + " ";
    Rng rng(108 + k.T);
    int B = k.B, T = k.T, P = k.P, d = k.d, Np = patch_count(T, P);
    size_t n = (size_t)B * T * d, np = (size_t)B * Np * d;
    V e = random_floats(n, rng), start = random_floats(d, rng), dout = random_floats(n, rng);
    V dstart0 = random_floats(d, rng);
    V p_ref(np), out_ref(n), dp_ref(np), dstart_ref = dstart0, de_ref(n);
    patch_mean_forward(p_ref.data(), e.data(), B, T, P, d);
    patch_broadcast_forward(out_ref.data(), p_ref.data(), start.data(), e.data(), B, T, P, d);
    patch_broadcast_backward(dp_ref.data(), dstart_ref.data(), de_ref.data(), dout.data(), B, T, P, d);
    V de_after_mean_ref = de_ref;
    patch_mean_backward(de_after_mean_ref.data(), dp_ref.data(), B, T, P, d);

    Dev<float> e_d(e), start_d(start), dout_d(dout), p_d(np), out_d(n), dp_d(np), dstart_d(dstart0), de_d(n);
    patch_mean_forward_cuda(p_d.poison().p, e_d.p, B, T, P, d, stream);
    patch_broadcast_forward_cuda(out_d.poison().p, p_d.p, start_d.p, e_d.p, B, T, P, d, stream);
    patch_broadcast_backward_cuda(dp_d.poison().p, dstart_d.p, de_d.poison().p, dout_d.p, B, T, P, d, stream);
    expect_close("p", p_d.get(), p_ref);
    expect_close("out", out_d.get(), out_ref);
    expect_close("dp", dp_d.get(), dp_ref);
    expect_close("dstart", dstart_d.get(), dstart_ref);
    expect_close("de (broadcast)", de_d.get(), de_ref);
    patch_mean_backward_cuda(de_d.p, dp_d.p, B, T, P, d, stream);
    expect_close("de (broadcast + mean)", de_d.get(), de_after_mean_ref);
  }
}

// Attention pooling at odd widths and patch sizes, a trailing incomplete patch, and more patches than the
// backward has warps (so warps sum several patches into their dq row); run twice for bit-reproducibility.
TEST_F(CudaLayers, PatchAttn) {
  Rng rng(111);
  struct Shape { int B, T, P, d; };
  for (Shape sh : {Shape{2, 13, 3, 37}, Shape{3, 40, 2, 64}, Shape{1, 9, 9, 5}, Shape{2, 1100, 2, 40}}) {
    int B = sh.B, T = sh.T, P = sh.P, d = sh.d, Np = patch_count(T, P);
    size_t n = (size_t)B * T * d, np = (size_t)B * Np * d;
    V e = random_floats(n, rng), q = random_floats(d, rng, 2.0), dp = random_floats(np, rng);
    V de0 = random_floats(n, rng), dq0 = random_floats(d, rng);
    V p_ref(np), w_ref((size_t)B * Np * P), de_ref = de0, dq_ref = dq0;
    patch_attn_forward(p_ref.data(), w_ref.data(), e.data(), q.data(), B, T, P, d);
    patch_attn_backward(de_ref.data(), dq_ref.data(), dp.data(), e.data(), q.data(), w_ref.data(), B, T, P, d);

    Dev<float> e_d(e), q_d(q), dp_d(dp), p_d(np), w_d(w_ref.size()), part_d(patch_attn_backward_cuda_partials(B, T, P, d));
    std::vector<V> runs;
    for (int run = 0; run < 2; run++) {
      Dev<float> de_d(de0), dq_d(dq0);
      patch_attn_forward_cuda(p_d.poison().p, w_d.poison().p, e_d.p, q_d.p, B, T, P, d, stream);
      patch_attn_backward_cuda(de_d.p, dq_d.p, dp_d.p, e_d.p, q_d.p, w_d.p, B, T, P, d, part_d.poison().p, stream);
      std::string what = "B" + std::to_string(B) + " T" + std::to_string(T) + " P" + std::to_string(P) + " d" +
                         std::to_string(d);
      expect_close(("p " + what).c_str(), p_d.get(), p_ref);
      expect_close(("weights " + what).c_str(), w_d.get(), w_ref);
      expect_close(("de " + what).c_str(), de_d.get(), de_ref);
      expect_close(("dq " + what).c_str(), dq_d.get(), dq_ref);
      runs.push_back(de_d.get());
      runs.push_back(dq_d.get());
    }
    EXPECT_TRUE(bit_equal(runs[0], runs[2]) && bit_equal(runs[1], runs[3])) << "backward not reproducible";
  }
}

TEST_F(CudaLayers, CrossEntropy) {
  Rng rng(109);
  int N = 37;
  float scale = 1.f / N;
  V logits = random_floats(N * 256, rng, 3.0);
  Bytes y(N);
  for (auto& b : y) b = uint8_t(rng.next_u64());
  y[0] = 0, y[1] = 255;
  V loss_ref(N), dlogits_ref(N * 256);
  cross_entropy_forward_backward(loss_ref.data(), dlogits_ref.data(), logits.data(), y.data(), N, scale);

  Dev<uint8_t> y_d(y);
  Dev<float> logits_d(logits), loss_d(N), dlogits_d(N * 256), loss2_d(N), inplace_d(logits), loss3_d(N);
  cross_entropy_forward_backward_cuda(loss_d.poison().p, dlogits_d.poison().p, logits_d.p, y_d.p, N, scale, stream);
  cross_entropy_forward_backward_cuda(loss2_d.poison().p, (float*)nullptr, logits_d.p, y_d.p, N, scale, stream);
  cross_entropy_forward_backward_cuda(loss3_d.poison().p, inplace_d.p, inplace_d.p, y_d.p, N, scale, stream);
  expect_close("loss", loss_d.get(), loss_ref);
  expect_close("dlogits", dlogits_d.get(), dlogits_ref);
  expect_close("loss (no dlogits)", loss2_d.get(), loss_ref);
  expect_close("loss (in place)", loss3_d.get(), loss_ref);
  expect_close("dlogits (in place)", inplace_d.get(), dlogits_ref);
}

// Two runs of each backward from the same inputs give identical bits (no atomics anywhere).
TEST_F(CudaLayers, BackwardIsBitReproducible) {
  Rng rng(110);
  {  // layernorm: many rows, so dw/db go through the block partials
    int N = 3001, C = 130;
    Dev<float> x(random_floats(N * C, rng)), w(random_floats(C, rng)), b(random_floats(C, rng)),
        dy(random_floats(N * C, rng)), y(N * C), mean(N), rstd(N), part(layernorm_backward_cuda_partials(N, C));
    layernorm_forward_cuda(y.p, mean.p, rstd.p, x.p, w.p, b.p, N, C, stream);
    auto run = [&] {
      Dev<float> dx(N * C), dw(V(C, 0.f)), db(V(C, 0.f));
      layernorm_backward_cuda(dx.p, dw.p, db.p, dy.p, x.p, mean.p, rstd.p, w.p, N, C, false, part.p, stream);
      return std::vector<V>{dx.get(), dw.get(), db.get()};
    };
    EXPECT_TRUE(bit_equal(run(), run())) << "layernorm";
  }
  {  // whole ssm layer: cuBLAS GEMMs, the long scan and its batch reduction
    int B = 4, T = 1500, d = 64, N = B * T;
    size_t n = (size_t)N * d;
    Dev<float> x(random_floats(n, rng)), Win(random_floats(d * d, rng, 0.15)), Wout(random_floats(d * d, rng, 0.15)),
        lam(random_floats(d, rng, 2.0, -2.0)), dy(random_floats(n, rng)), y(n), u(n), h(n), scr(n),
        part(diag_ssm_backward_cuda_partials(B, T, d));
    DiagSsmWeights<float> w{Win.p, lam.p, Wout.p};
    diag_ssm_forward_cuda(y.p, u.p, h.p, x.p, w, B, T, d, (const float*)nullptr, (float*)nullptr, Gemm{handle}, stream);
    auto run = [&] {
      Dev<float> dx(n), gWin(V(d * d, 0.f)), glam(V(d, 0.f)), gWout(V(d * d, 0.f));
      diag_ssm_backward_cuda(dx.p, DiagSsmGrads<float>{gWin.p, glam.p, gWout.p}, dy.p, x.p, u.p, h.p, w, B, T, d, scr.p,
                             part.p, Gemm{handle}, stream);
      return std::vector<V>{dx.get(), gWin.get(), glam.get(), gWout.get()};
    };
    EXPECT_TRUE(bit_equal(run(), run())) << "diag_ssm";
  }
  {  // the skip's backward fused with its LayerNorm's: dw, db and dD through the block partials
    int N = 3001, C = 260;
    Dev<float> x(random_floats(N * C, rng)), z(random_floats(N * C, rng)), dz(random_floats(N * C, rng)),
        D(random_floats(C, rng)), w(random_floats(C, rng)), mean(random_floats(N, rng)),
        rstd(random_floats(N, rng, 0.5, 1.0)), part(layernorm_backward_cuda_partials(N, C));
    V g0 = random_floats(N * C, rng);
    auto run = [&] {
      Dev<float> dx(g0), dw(V(C, 0.f)), db(V(C, 0.f)), dD(V(C, 0.f));
      skip_sum_layernorm_backward_cuda(dx.p, dw.p, db.p, dD.p, dz.p, x.p, z.p, D.p, mean.p, rstd.p, w.p, N, C, part.p,
                                       stream);
      return std::vector<V>{dx.get(), dw.get(), db.get(), dD.get()};
    };
    EXPECT_TRUE(bit_equal(run(), run())) << "skip sum + layernorm";
  }
  {  // swiglu
    int N = 300, d = 64, H = 85, S = swiglu_stride_cuda(H);
    Dev<float> x(random_floats(N * d, rng)), W12(random_floats(2 * H * d, rng, 0.2)),
        W3(random_floats(d * H, rng, 0.1)), dy(random_floats(N * d, rng)), y(N * d), g(N * 2 * S), m(N * S),
        scr(N * 3 * S), padded(swiglu_padded_elems_cuda(d, H)), dw_scratch(swiglu_dw_scratch_floats_cuda(d, H));
    swiglu_forward_cuda(y.p, g.p, m.p, x.p, W12.p, W3.p, N, d, H, (const float*)nullptr, padded.p, gemm(), stream);
    auto run = [&] {
      Dev<float> dx(N * d), dW12(V(2 * H * d, 0.f)), dW3(V(d * H, 0.f));
      swiglu_backward_cuda(dx.p, dW12.p, dW3.p, dy.p, x.p, g.p, m.p, padded.p, N, d, H, scr.p, dw_scratch.p, gemm(),
                           stream);
      return std::vector<V>{dx.get(), dW12.get(), dW3.get()};
    };
    EXPECT_TRUE(bit_equal(run(), run())) << "swiglu";
  }
  {  // embedding and patch broadcast
    int B = 4, T = 517, P = 4, d = 96, N = B * T;
    Bytes xb(N);
    for (auto& v : xb) v = uint8_t(rng.next_u64() % 8);
    Dev<uint8_t> xs(xb);
    Dev<float> de(random_floats((size_t)N * d, rng)),
        scratch(embedding_backward_cuda_scratch_bytes(N, sizeof(float)) / sizeof(float));
    auto run = [&] {
      Dev<float> dE(V(256 * d, 0.f)), dp((size_t)B * patch_count(T, P) * d), dstart(V(d, 0.f)), de2((size_t)N * d);
      embedding_backward_cuda(dE.p, de.p, xs.p, N, d, scratch.p, Gemm{handle}, stream);
      patch_broadcast_backward_cuda(dp.p, dstart.p, de2.p, de.p, B, T, P, d, stream);
      return std::vector<V>{dE.get(), dp.get(), dstart.get()};
    };
    EXPECT_TRUE(bit_equal(run(), run())) << "embedding / patch";
  }
}

// The fixed-order sums (the loss mean, the gradient norm) against the host in double, at lengths with a partial
// last pack; the same values from an address that is not 16-byte aligned (scalar loads) give the same bits.
TEST_F(CudaLayers, SumPartials) {
  Rng rng(112);
  for (size_t n : {size_t(1), size_t(7), size_t(4096), size_t(1000003)}) {
    tag = "n" + std::to_string(n) + " ";
    V x = random_floats(n + 1, rng);  // x[1..n] is what the unaligned runs read
    double sum = 0, squares = 0;
    for (size_t i = 0; i < n; i++) sum += x[i], squares += (double)x[i] * x[i];
    Dev<float> x_d(x), unaligned_d(n + 1), sums(2 * (sum_cuda_partials() + 1));
    BYTELM_CUDA_CHECK(cudaMemcpy(unaligned_d.p + 1, x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    sum_cuda(sums.p, x_d.p, n, sums.p + 2, stream);
    sum_cuda(sums.p + 1, unaligned_d.p + 1, n, sums.p + 2, stream);
    V s = sums.get();
    EXPECT_NEAR(s[0], sum, 1e-5 * std::sqrt((double)n)) << tag << "sum";
    EXPECT_TRUE(std::memcmp(&s[0], &s[1], sizeof(float)) == 0) << tag << "the load width changed the sum";
    // the gradient norm AdamW clips by (lr 0: the step changes nothing else that matters here)
    AdamWCudaArgs args{0.f, 0.f, 0.9f, 0.95f, 0.1f, 0.05f, 0.f};
    Dev<AdamWCudaArgs> args_d(std::vector<AdamWCudaArgs>{args});
    Dev<float> p_d(V(n, 0.f)), m_d(V(n, 0.f)), v_d(V(n, 0.f)), scratch_d(adamw_cuda_scratch());
    Dev<uint8_t> decay_d(Bytes(n, 0));
    adamw_step_cuda(p_d.p, nullptr, x_d.p, m_d.p, v_d.p, decay_d.p, n, args_d.p, scratch_d.p, stream);
    float norm = scratch_d.get().back();
    EXPECT_NEAR(norm, std::sqrt(squares), 1e-5 * std::sqrt(squares)) << tag << "gradient norm";
  }
  tag.clear();
}

// ---- bf16 storage (the fast path of --device cuda): kBf16Tol, see cuda_testing.h ----

TEST_F(CudaLayers, Bf16Linear) {
  Rng rng(201);
  int N = 37, in = 48, out = 29;
  V x = round_bf16(random_floats(N * in, rng)), W = round_bf16(random_floats(out * in, rng, 0.3)),
    dy = round_bf16(random_floats(N * out, rng)), dW0 = random_floats(out * in, rng);
  V y_ref(N * out), dW_ref = dW0, dx_ref(N * in);
  linear_forward(y_ref.data(), x.data(), W.data(), N, in, out);
  linear_backward(dx_ref.data(), dW_ref.data(), dy.data(), x.data(), W.data(), N, in, out, false);
  Dev<bf16> x_d(to_bf16(x)), W_d(to_bf16(W)), dy_d(to_bf16(dy)), y_d(N * out), dx_d(N * in);
  Dev<float> dW_d(dW0);
  linear_forward_cuda(y_d.poison().p, x_d.p, W_d.p, N, in, out, Gemm{handle}, stream);
  linear_backward_cuda(dx_d.poison().p, dW_d.p, dy_d.p, x_d.p, W_d.p, N, in, out, false, Gemm{handle}, stream);
  expect_close("y", to_float(y_d.get()), y_ref, kBf16Tol);
  expect_close("dx", to_float(dx_d.get()), dx_ref, kBf16Tol);
  expect_close("dW", dW_d.get(), dW_ref, 1e-5);  // bf16 products, fp32 output: only the accumulation order differs
}

// Tuned bf16 products (GemmLt::tune): candidates are timed on the product's own operands before the real call, so
// the results must be the product's once, also where the output accumulates in place (weight gradients, dx += ...)
// and where the sum goes to another buffer (C != D).
TEST_F(CudaLayers, Bf16TunedProducts) {
  Rng rng(206);
  int N = 300, in = 96, out = 80;
  V x = round_bf16(random_floats(N * in, rng)), W = round_bf16(random_floats(out * in, rng, 0.3)),
    dy = round_bf16(random_floats(N * out, rng)), dW0 = random_floats(out * in, rng),
    dx0 = round_bf16(random_floats(N * in, rng)), res = round_bf16(random_floats(N * out, rng));
  V y_ref(N * out), dW_ref = dW0, dx_ref = dx0, sum_ref(N * out);
  linear_forward(y_ref.data(), x.data(), W.data(), N, in, out);
  linear_backward(dx_ref.data(), dW_ref.data(), dy.data(), x.data(), W.data(), N, in, out, true);
  for (int i = 0; i < N * out; i++) sum_ref[i] = res[i] + y_ref[i];
  lt->tune(true);
  Dev<bf16> x_d(to_bf16(x)), W_d(to_bf16(W)), dy_d(to_bf16(dy)), y_d(N * out), dx_d(to_bf16(dx0)), res_d(to_bf16(res)),
      sum_d(N * out);
  Dev<float> dW_d(dW0);
  linear_forward_cuda(y_d.poison().p, x_d.p, W_d.p, N, in, out, gemm(), stream);
  linear_backward_cuda(dx_d.p, dW_d.p, dy_d.p, x_d.p, W_d.p, N, in, out, true, gemm(), stream);
  gemm_rows_add_cuda(false, true, N, out, in, x_d.p, in, W_d.p, in, res_d.p, out, sum_d.poison().p, out, gemm(),
                     stream);
  expect_close("y", to_float(y_d.get()), y_ref, kBf16Tol);
  expect_close("dx accumulated", to_float(dx_d.get()), dx_ref, kBf16Tol);
  expect_close("dW accumulated", dW_d.get(), dW_ref, 1e-5);
  expect_close("residual + y", to_float(sum_d.get()), sum_ref, kBf16Tol);
  lt->tune(false);
}

TEST_F(CudaLayers, Bf16LayerNorm) {
  // C = 130 takes the backward's blocks of up to 256 threads (dx accumulated onto is loaded a row ahead), C = 2100
  // those of up to 1024; at N = 20000 both grids are one wave (layernorm.cu), whose row groups walk many rows each
  for (auto [N, C] : {std::pair{301, 130}, std::pair{300, 2100}, std::pair{20000, 520}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C));
    tag = "bf16 N=" + std::to_string(N) + " ";
    Rng rng(202 + C);
    check_layernorm<bf16>(N, C, rng, kBf16Tol);
  }
}

TEST_F(CudaLayers, Bf16DiagSsm) {
  Rng rng(203);
  int B = 3, T = 700, d = 48, N = B * T;  // several spans, so the chunk carries are exercised
  size_t n = (size_t)N * d;
  V x = round_bf16(random_floats(n, rng)), Win = round_bf16(random_floats(d * d, rng, 0.2)),
    Wout = round_bf16(random_floats(d * d, rng, 0.2));
  V lam = host_device_agreeing(random_floats(d, rng, 2.0, -1.0)), dy = round_bf16(random_floats(n, rng));
  V gWin0 = random_floats(d * d, rng), glam0 = random_floats(d, rng), gWout0 = random_floats(d * d, rng);
  V y_ref(n), u_ref(n), h_ref(n), dx_ref(n), scratch(n), gWin = gWin0, glam = glam0, gWout = gWout0;
  DiagSsmWeights<float> w_ref{Win.data(), lam.data(), Wout.data()};
  diag_ssm_forward(y_ref.data(), u_ref.data(), h_ref.data(), x.data(), w_ref, B, T, d, (const float*)nullptr,
                   (float*)nullptr);
  diag_ssm_backward(dx_ref.data(), DiagSsmGrads<float>{gWin.data(), glam.data(), gWout.data()}, dy.data(), x.data(),
                    u_ref.data(), h_ref.data(), w_ref, B, T, d, scratch.data());
  Dev<bf16> x_d(to_bf16(x)), Win_d(to_bf16(Win)), Wout_d(to_bf16(Wout)), dy_d(to_bf16(dy)), y_d(n), u_d(n), h_d(n),
      dx_d(n), scratch_d(n);
  Dev<float> lam_d(lam), part_d(diag_ssm_backward_cuda_partials(B, T, d)), gWin_d(gWin0), glam_d(glam0),
      gWout_d(gWout0);
  DiagSsmWeights<float, bf16> w{Win_d.p, lam_d.p, Wout_d.p};
  diag_ssm_forward_cuda(y_d.poison().p, u_d.poison().p, h_d.poison().p, x_d.p, w, B, T, d, (const float*)nullptr,
                        (float*)nullptr, Gemm{handle}, stream);
  diag_ssm_backward_cuda(dx_d.poison().p, DiagSsmGrads<float>{gWin_d.p, glam_d.p, gWout_d.p}, dy_d.p, x_d.p, u_d.p,
                         h_d.p, w, B, T, d, scratch_d.poison().p, part_d.poison().p, Gemm{handle}, stream);
  expect_close("y", to_float(y_d.get()), y_ref, kBf16Tol);
  expect_close("h", to_float(h_d.get()), h_ref, kBf16Tol);
  expect_close("dx", to_float(dx_d.get()), dx_ref, kBf16Tol);
  expect_close("dW_in", gWin_d.get(), gWin, kBf16Tol);
  expect_close("dlam", glam_d.get(), glam, kBf16Tol);
  expect_close("dW_out", gWout_d.get(), gWout, kBf16Tol);
}

TEST_F(CudaLayers, Bf16SkipLayerNorm) {
  // C = 1024 is the ssm-100m width (rows of several warps); C = 6000 takes blocks of 750 threads and, for the
  // backward's three column sums, more than 48 KB of shared memory; N = 20000 rows of 512 fill more than the one
  // wave of blocks the grids have, so each row group walks many rows
  for (auto [N, C] : {std::pair{301, 1024}, std::pair{65, 6000}, std::pair{20000, 512}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C));
    Rng rng(205 + C);
    V x = round_bf16(random_floats(N * C, rng, 2.0, 0.5)), y = round_bf16(random_floats(N * C, rng)),
      D = random_floats(C, rng), w = random_floats(C, rng, 1.0, 1.0), b = random_floats(C, rng);
    V z(N * C), zmean(N), zrstd(N);  // z = LN(x) as stored
    layernorm_forward(z.data(), zmean.data(), zrstd.data(), x.data(), w.data(), b.data(), N, C);
    z = round_bf16(z);
    V q_ref(N * C), out_ref(N * C), mean_ref(N), rstd_ref(N);
    skip_layernorm_forward(q_ref.data(), out_ref.data(), mean_ref.data(), rstd_ref.data(), x.data(), y.data(),
                           z.data(), D.data(), w.data(), b.data(), N, C);
    V q_rounded = round_bf16(q_ref), out_of_rounded(N * C), mean_r(N), rstd_r(N);  // the device normalises q as stored
    layernorm_forward(out_of_rounded.data(), mean_r.data(), rstd_r.data(), q_rounded.data(), w.data(), b.data(), N, C);
    V g = round_bf16(random_floats(N * C, rng)), dz0 = round_bf16(random_floats(N * C, rng)),
      dD0 = random_floats(C, rng), dw0 = random_floats(C, rng), db0 = random_floats(C, rng);
    V dx_ref = g, dz_sum = dz0, dD_ref = dD0, dw_ref = dw0, db_ref = db0;
    skip_sum_layernorm_backward(dx_ref.data(), dw_ref.data(), db_ref.data(), dD_ref.data(), dz_sum.data(), x.data(),
                                z.data(), D.data(), zmean.data(), zrstd.data(), w.data(), N, C);
    Dev<bf16> x_d(to_bf16(x)), y_d(to_bf16(y)), z_d(to_bf16(z)), dx_d(to_bf16(g)), dz_d(to_bf16(dz0)), q_d(N * C),
        out_d(N * C);
    Dev<float> D_d(D), w_d(w), b_d(b), mean_d(N), rstd_d(N), zmean_d(zmean), zrstd_d(zrstd), dD_d(dD0), dw_d(dw0),
        db_d(db0), part_d(layernorm_backward_cuda_partials(N, C));
    skip_layernorm_forward_cuda(q_d.poison().p, out_d.poison().p, mean_d.poison().p, rstd_d.poison().p, x_d.p, y_d.p,
                                z_d.p, D_d.p, w_d.p, b_d.p, N, C, stream);
    skip_sum_layernorm_backward_cuda(dx_d.p, dw_d.p, db_d.p, dD_d.p, dz_d.p, x_d.p, z_d.p, D_d.p, zmean_d.p,
                                     zrstd_d.p, w_d.p, N, C, part_d.poison().p, stream);
    expect_close("q", to_float(q_d.get()), q_ref, kBf16Tol);
    expect_close("out", to_float(out_d.get()), out_of_rounded, kBf16Tol);
    expect_close("mean", mean_d.get(), mean_r, 1e-5);  // fp32 statistics of the stored q
    expect_close("rstd", rstd_d.get(), rstd_r, 1e-5);
    expect_close("dx", to_float(dx_d.get()), dx_ref, kBf16Tol);
    expect_close("dw", dw_d.get(), dw_ref, 1e-5);  // fp32 sums of the same bf16 inputs
    expect_close("db", db_d.get(), db_ref, 1e-5);
    expect_close("dD", dD_d.get(), dD_ref, 1e-5);
  }
}

TEST_F(CudaLayers, Bf16SwiGlu) {
  Rng rng(204);
  int N = 37, d = 48, H = 100, S = swiglu_stride_cuda(H);
  V x = round_bf16(random_floats(N * d, rng)), W12 = round_bf16(random_floats(2 * H * d, rng, 0.2)),
    W3 = round_bf16(random_floats(d * H, rng, 0.1)), dy = round_bf16(random_floats(N * d, rng)),
    res = round_bf16(random_floats(N * d, rng));
  V dW12_0 = random_floats(2 * H * d, rng), dW3_0 = random_floats(d * H, rng);
  V y_ref(N * d), g_ref(N * 2 * H), m_ref(N * H), dx_ref(N * d), scratch(N * 3 * H), dW12 = dW12_0, dW3 = dW3_0;
  swiglu_forward(y_ref.data(), g_ref.data(), m_ref.data(), x.data(), W12.data(), W3.data(), N, d, H, res.data());
  swiglu_backward(dx_ref.data(), dW12.data(), dW3.data(), dy.data(), x.data(), g_ref.data(), m_ref.data(), W12.data(),
                  W3.data(), N, d, H, scratch.data());
  Dev<bf16> x_d(to_bf16(x)), W12_d(to_bf16(W12)), W3_d(to_bf16(W3)), dy_d(to_bf16(dy)), res_d(to_bf16(res)),
      y_d(N * d), g_d(N * 2 * S), m_d(N * S), dx_d(N * d), scratch_d(N * 3 * S),
      padded_d(swiglu_padded_elems_cuda(d, H));
  Dev<float> dw_scratch_d(swiglu_dw_scratch_floats_cuda(d, H)), dW12_d(dW12_0), dW3_d(dW3_0);
  swiglu_forward_cuda(y_d.poison().p, g_d.poison().p, m_d.poison().p, x_d.p, W12_d.p, W3_d.p, N, d, H, res_d.p,
                      padded_d.poison().p, gemm(), stream);
  swiglu_backward_cuda(dx_d.poison().p, dW12_d.p, dW3_d.p, dy_d.p, x_d.p, g_d.p, m_d.p, padded_d.p, N, d, H,
                       scratch_d.poison().p, dw_scratch_d.poison().p, gemm(), stream);
  expect_close("y", to_float(y_d.get()), y_ref, kBf16Tol);
  expect_close("dx", to_float(dx_d.get()), dx_ref, kBf16Tol);
  expect_close("dW12", dW12_d.get(), dW12, kBf16Tol);
  expect_close("dW3", dW3_d.get(), dW3, kBf16Tol);
}

TEST_F(CudaLayers, Bf16BytesAndLoss) {
  Rng rng(205);
  int B = 2, T = 131, P = 3, d = 200, N = B * T, Np = patch_count(T, P);
  Bytes x(N), y(N);
  for (auto& v : x) v = uint8_t(rng.next_u64());
  for (auto& v : y) v = uint8_t(rng.next_u64());
  V E = round_bf16(random_floats(256 * d, rng)), start = random_floats(d, rng),
    dout = round_bf16(random_floats((size_t)N * d, rng)), dE0 = random_floats(256 * d, rng),
    logits = round_bf16(random_floats((size_t)N * 256, rng, 3.0));
  V e_ref((size_t)N * d), p_ref((size_t)B * Np * d), out_ref((size_t)N * d), dp_ref((size_t)B * Np * d),
      dstart_ref(d, 0.f), de_ref((size_t)N * d), dE_ref = dE0, loss_ref(N), dlogits_ref((size_t)N * 256);
  embedding_forward(e_ref.data(), x.data(), E.data(), N, d);
  patch_mean_forward(p_ref.data(), e_ref.data(), B, T, P, d);
  patch_broadcast_forward(out_ref.data(), p_ref.data(), start.data(), e_ref.data(), B, T, P, d);
  patch_broadcast_backward(dp_ref.data(), dstart_ref.data(), de_ref.data(), dout.data(), B, T, P, d);
  embedding_backward(dE_ref.data(), dout.data(), x.data(), N, d);
  cross_entropy_forward_backward(loss_ref.data(), dlogits_ref.data(), logits.data(), y.data(), N, 1.f / N);

  Dev<uint8_t> x_d(x), y_d(y);
  Dev<float> E_d(E), start_d(start), dstart_d(V(d, 0.f)), dE_d(dE0), loss_d(N);
  Dev<bf16> e_d((size_t)N * d), p_d((size_t)B * Np * d), out_d((size_t)N * d), dout_d(to_bf16(dout)),
      dp_d((size_t)B * Np * d), de_d((size_t)N * d), logits_d(to_bf16(logits)), dlogits_d((size_t)N * 256);
  embedding_forward_cuda(e_d.poison().p, x_d.p, E_d.p, N, d, stream);
  patch_mean_forward_cuda(p_d.poison().p, e_d.p, B, T, P, d, stream);
  patch_broadcast_forward_cuda(out_d.poison().p, p_d.p, start_d.p, e_d.p, B, T, P, d, stream);
  patch_broadcast_backward_cuda(dp_d.poison().p, dstart_d.p, de_d.poison().p, dout_d.p, B, T, P, d, stream);
  Dev<bf16> onehot_d(embedding_backward_cuda_scratch_bytes(N, sizeof(bf16)) / sizeof(bf16));
  embedding_backward_cuda(dE_d.p, dout_d.p, x_d.p, N, d, onehot_d.poison().p, Gemm{handle}, stream);
  cross_entropy_forward_backward_cuda(loss_d.poison().p, dlogits_d.poison().p, logits_d.p, y_d.p, N, 1.f / N, stream);
  EXPECT_TRUE(bit_equal(to_float(e_d.get()), e_ref)) << "embedding rows are bf16 values already: a copy";
  expect_close("p", to_float(p_d.get()), p_ref, kBf16Tol);
  expect_close("out", to_float(out_d.get()), out_ref, kBf16Tol);
  expect_close("dp", to_float(dp_d.get()), dp_ref, kBf16Tol);
  expect_close("dstart", dstart_d.get(), dstart_ref, 1e-5);
  EXPECT_TRUE(bit_equal(to_float(de_d.get()), de_ref)) << "de is a copy of dout";
  expect_close("dE", dE_d.get(), dE_ref, 1e-5);
  expect_close("loss", loss_d.get(), loss_ref, 1e-5);  // fp32 arithmetic on the same logits
  expect_close("dlogits", to_float(dlogits_d.get()), dlogits_ref, kBf16Tol);
}

#else  // built without CUDA: the same tests, skipped

#define BYTELM_CUDA_SKIPPED(name) \
  TEST(CudaLayers, name) { GTEST_SKIP() << "built without CUDA (no nvcc at configure time)"; }
BYTELM_CUDA_SKIPPED(Linear)
BYTELM_CUDA_SKIPPED(GemmRowsAdd)
BYTELM_CUDA_SKIPPED(LayerNorm)
BYTELM_CUDA_SKIPPED(SkipLayerNorm)
BYTELM_CUDA_SKIPPED(ScanDecayMatchesHost)
BYTELM_CUDA_SKIPPED(DiagScan)
BYTELM_CUDA_SKIPPED(SwiGluBackwardNeedsItsForward)
BYTELM_CUDA_SKIPPED(DiagSsm)
BYTELM_CUDA_SKIPPED(SwiGlu)
BYTELM_CUDA_SKIPPED(Embedding)
BYTELM_CUDA_SKIPPED(Patch)
BYTELM_CUDA_SKIPPED(CrossEntropy)
BYTELM_CUDA_SKIPPED(BackwardIsBitReproducible)
BYTELM_CUDA_SKIPPED(SumPartials)
BYTELM_CUDA_SKIPPED(Bf16Linear)
BYTELM_CUDA_SKIPPED(Bf16TunedProducts)
BYTELM_CUDA_SKIPPED(Bf16LayerNorm)
BYTELM_CUDA_SKIPPED(Bf16DiagSsm)
BYTELM_CUDA_SKIPPED(Bf16SkipLayerNorm)
BYTELM_CUDA_SKIPPED(Bf16SwiGlu)
BYTELM_CUDA_SKIPPED(Bf16BytesAndLoss)
#undef BYTELM_CUDA_SKIPPED

#endif
