// The sm90 product (layers/gemm_sm90.h) against a double-precision reference on the same bf16 inputs: edges of
// every kind (M past the last 128-row tile, N past the last column tile, K past the last 64-column stage), leading
// dimensions longer than the rows with NaN in the gaps (read, they would spread), and C poisoned first (an element
// left unwritten stays NaN; one written outside [M, N) shows as a number in the gap).
#include <gtest/gtest.h>

#ifdef BYTELM_WITH_CUDA

#include <cmath>
#include <string>

#include "cuda_testing.h"
#include "layers/gemm_sm90.h"

namespace {

using namespace bytelm;
using namespace bytelm::testing;

class CudaGemmSm90 : public CudaTest {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (!IsSkipped() && !gemm_sm90_available()) GTEST_SKIP() << "needs a GPU of compute capability 9.0";
  }
};

constexpr GemmTileN kTiles[] = {GemmTileN::n128, GemmTileN::n256, GemmTileN::n128_pingpong};
constexpr GemmTileN kFusedTiles[] = {GemmTileN::n128, GemmTileN::n128_pingpong};  // no n256: no room to stage

// Elements of out from `from` on that are not NaN: a poisoned guard area the kernel wrote to.
int guard_written(const V& out, size_t from) {
  int n = 0;
  for (size_t i = from; i < out.size(); i++) n += !std::isnan(out[i]);
  return n;
}

// rows x cols of random bf16 values in rows of ld, NaN in the columns past cols.
V padded_random(int rows, int cols, int ld, Rng& rng) {
  V v((size_t)rows * ld, NAN);
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) v[(size_t)r * ld + c] = float(rng.normal());
  return round_bf16(v);
}

TEST_F(CudaGemmSm90, MatchesTheReferenceAtEveryEdge) {
  struct Shape {
    int M, N, K, pad;  // pad: extra columns in each leading dimension
  };
  for (Shape s : {Shape{128, 128, 64, 0}, Shape{1, 8, 8, 0}, Shape{300, 264, 520, 8}, Shape{1000, 136, 1376, 0},
                  Shape{777, 2752, 512, 16}, Shape{2048, 512, 1376, 0},
                  // many tiles a block (the persistent loop), 5 stages a tile: the ring wraps mid-tile
                  Shape{8192, 1376, 264, 0},
                  // and 3 stages a tile: the pingpong consumers' turns come faster than the ring wraps
                  Shape{8192, 1376, 136, 0}}) {
    Rng rng((uint64_t)s.M * 7919 + s.N * 31 + s.K);
    const int lda = s.K + s.pad, ldb = s.K + s.pad, ldc = s.N + s.pad;
    V a = padded_random(s.M, s.K, lda, rng), b = padded_random(s.N, s.K, ldb, rng), ref;
    for (int i = 0; i < s.M; i++)
      for (int j = 0; j < s.N; j++) {
        double sum = 0;
        for (int k = 0; k < s.K; k++) sum += (double)a[(size_t)i * lda + k] * b[(size_t)j * ldb + k];
        ref.push_back((float)sum);
      }
    Dev<bf16> da(to_bf16(a)), db(to_bf16(b)), dc((size_t)s.M * ldc);
    ASSERT_TRUE(gemm_sm90_fits(dc, ldc, da, lda, db, ldb, s.M, s.N, s.K));
    for (GemmTileN tile : kTiles) {
      tag = "M" + std::to_string(s.M) + "N" + std::to_string(s.N) + "K" + std::to_string(s.K) + "/" +
            gemm_tile_name(tile) + " ";
      dc.poison();
      gemm_sm90_tn(dc, ldc, da, lda, db, ldb, s.M, s.N, s.K, tile, stream);
      BYTELM_CUDA_CHECK(cudaGetLastError());
      V c = to_float(dc.get()), out;
      int touched_gap = 0;
      for (int i = 0; i < s.M; i++) {
        for (int j = 0; j < s.N; j++) out.push_back(c[(size_t)i * ldc + j]);
        for (int j = s.N; j < ldc; j++) touched_gap += !std::isnan(c[(size_t)i * ldc + j]);
      }
      // bf16 output: each element rounded once (relative 2^-9 at most), accumulation in fp32
      expect_close("C", out, ref, 4e-3);
      EXPECT_EQ(touched_gap, 0) << tag << "elements written past column N";
    }
  }
}

// The SwiGLU products' shapes: rows, padded units S, real units H (the rest zero padding), K; one row, edges, and
// the ssm presets' widths.
struct SwigluShape {
  int M, S, H, K;
};
constexpr SwigluShape kSwigluShapes[] = {
    {1, 16, 16, 8}, {300, 88, 85, 520}, {777, 1376, 1365, 512}, {8192, 688, 682, 264}};

// g = [x W1^T | x W2^T] and m = silu(a) b from the rounded a and b, with W12's rows past H zero in both halves
// (the padding the SwiGLU layer gives it): g and m must be exactly zero there.
TEST_F(CudaGemmSm90, SwigluEpilogueMatchesTheReference) {
  for (SwigluShape s : kSwigluShapes) {
    Rng rng((uint64_t)s.M * 131 + s.S);
    V x = round_bf16(random_floats((size_t)s.M * s.K, rng)), w = round_bf16(random_floats((size_t)2 * s.S * s.K, rng));
    for (int half = 0; half < 2; half++)
      for (int u = s.H; u < s.S; u++)
        for (int k = 0; k < s.K; k++) w[((size_t)half * s.S + u) * s.K + k] = 0.f;
    V g_ref((size_t)s.M * 2 * s.S), m_ref((size_t)s.M * s.S);
    for (int i = 0; i < s.M; i++)
      for (int u = 0; u < s.S; u++) {
        double a = 0, b = 0;
        for (int k = 0; k < s.K; k++) {
          a += (double)x[(size_t)i * s.K + k] * w[(size_t)u * s.K + k];
          b += (double)x[(size_t)i * s.K + k] * w[((size_t)s.S + u) * s.K + k];
        }
        float ar = round_bf16({(float)a})[0], br = round_bf16({(float)b})[0];
        g_ref[(size_t)i * 2 * s.S + u] = ar;
        g_ref[(size_t)i * 2 * s.S + s.S + u] = br;
        m_ref[(size_t)i * s.S + u] = ar / (1.f + std::exp(-ar)) * br;
      }
    // one guard row past M in each output: it must stay poisoned
    Dev<bf16> dx(to_bf16(x)), dw(to_bf16(w)), dg(g_ref.size() + 2 * s.S), dm(m_ref.size() + s.S);
    ASSERT_TRUE(gemm_sm90_swiglu_fits(dg, dm, dx, s.K, dw, s.K, s.M, s.S, s.K));
    for (GemmTileN tile : kFusedTiles) {
      tag = "M" + std::to_string(s.M) + "S" + std::to_string(s.S) + "K" + std::to_string(s.K) + "/" +
            gemm_tile_name(tile) + " ";
      dg.poison();
      dm.poison();
      gemm_sm90_swiglu(dg, dm, dx, s.K, dw, s.K, s.M, s.S, s.K, tile, stream);
      BYTELM_CUDA_CHECK(cudaGetLastError());
      V g = to_float(dg.get()), m = to_float(dm.get());
      EXPECT_EQ(guard_written(g, g_ref.size()) + guard_written(m, m_ref.size()), 0) << tag << "written past row M";
      g.resize(g_ref.size());
      m.resize(m_ref.size());
      // m elementwise against the gate applied to the kernel's own g, as swiglu_gate_kernel would: within a
      // rounding (the host's exp against the device's expf)
      int off = 0;
      for (int i = 0; i < s.M; i++)
        for (int u = 0; u < s.S; u++) {
          float a = g[(size_t)i * 2 * s.S + u], b = g[(size_t)i * 2 * s.S + s.S + u];
          float want = round_bf16({a / (1.f + std::exp(-a)) * b})[0];
          off += std::fabs(m[(size_t)i * s.S + u] - want) > 0x1p-7f * std::fabs(want);
        }
      EXPECT_EQ(off, 0) << tag << "elements of m not the gate of g";
      expect_close("g", g, g_ref, 4e-3);
      expect_close("m", m, m_ref, kBf16Tol);
      int nonzero_pad = 0;
      for (int i = 0; i < s.M; i++)
        for (int u = s.H; u < s.S; u++)
          nonzero_pad +=
              g[(size_t)i * 2 * s.S + u] != 0 || g[(size_t)i * 2 * s.S + s.S + u] != 0 || m[(size_t)i * s.S + u] != 0;
      EXPECT_EQ(nonzero_pad, 0) << tag << "padding units not zero";
    }
  }
}

// dg = [dm b silu'(a) | dm silu(a)] with dm = dy W3 rounded to bf16, W3t = W3^T with zero rows past H and g's
// padding columns zero (as the forward leaves them): dg must be exactly zero there.
TEST_F(CudaGemmSm90, SwigluBackwardEpilogueMatchesTheReference) {
  for (SwigluShape s : kSwigluShapes) {
    Rng rng((uint64_t)s.M * 17 + s.S);
    V dy = round_bf16(random_floats((size_t)s.M * s.K, rng)), w3t = round_bf16(random_floats((size_t)s.S * s.K, rng));
    V g = round_bf16(random_floats((size_t)s.M * 2 * s.S, rng));
    for (int u = s.H; u < s.S; u++) {
      for (int k = 0; k < s.K; k++) w3t[(size_t)u * s.K + k] = 0.f;
      for (int i = 0; i < s.M; i++) g[(size_t)i * 2 * s.S + u] = g[(size_t)i * 2 * s.S + s.S + u] = 0.f;
    }
    V dg_ref((size_t)s.M * 2 * s.S);
    for (int i = 0; i < s.M; i++)
      for (int u = 0; u < s.S; u++) {
        double dm = 0;
        for (int k = 0; k < s.K; k++) dm += (double)dy[(size_t)i * s.K + k] * w3t[(size_t)u * s.K + k];
        float dmr = round_bf16({(float)dm})[0], a = g[(size_t)i * 2 * s.S + u], b = g[(size_t)i * 2 * s.S + s.S + u];
        float sg = 1.f / (1.f + std::exp(-a));
        dg_ref[(size_t)i * 2 * s.S + u] = dmr * b * sg * (1.f + a * (1.f - sg));
        dg_ref[(size_t)i * 2 * s.S + s.S + u] = dmr * a * sg;
      }
    Dev<bf16> ddy(to_bf16(dy)), dw(to_bf16(w3t)), dgin(to_bf16(g)), ddg(dg_ref.size() + 2 * s.S);  // + a guard row
    ASSERT_TRUE(gemm_sm90_swiglu_backward_fits(ddg, ddy, s.K, dw, s.K, dgin, s.M, s.S, s.K));
    for (GemmTileN tile : kFusedTiles) {
      tag = "M" + std::to_string(s.M) + "S" + std::to_string(s.S) + "K" + std::to_string(s.K) + "/" +
            gemm_tile_name(tile) + " ";
      ddg.poison();
      gemm_sm90_swiglu_backward(ddg, ddy, s.K, dw, s.K, dgin, s.M, s.S, s.K, tile, stream);
      BYTELM_CUDA_CHECK(cudaGetLastError());
      V dg = to_float(ddg.get());
      EXPECT_EQ(guard_written(dg, dg_ref.size()), 0) << tag << "written past row M";
      dg.resize(dg_ref.size());
      expect_close("dg", dg, dg_ref, kBf16Tol);
      int nonzero_pad = 0;
      for (int i = 0; i < s.M; i++)
        for (int u = s.H; u < s.S; u++)
          nonzero_pad += dg[(size_t)i * 2 * s.S + u] != 0 || dg[(size_t)i * 2 * s.S + s.S + u] != 0;
      EXPECT_EQ(nonzero_pad, 0) << tag << "padding units not zero";
    }
  }
}

TEST_F(CudaGemmSm90, OperandsThatDoNotFitAreRefused) {
  Dev<bf16> a(64 * 64), b(64 * 64), c(64 * 64);
  EXPECT_FALSE(gemm_sm90_fits(c, 64, a, 64, b, 64, 64, 60, 64));        // N not a multiple of 8
  EXPECT_FALSE(gemm_sm90_fits(c, 64, a, 60, b, 64, 64, 64, 60));        // K
  EXPECT_FALSE(gemm_sm90_fits(c, 64, a.p + 1, 64, b, 64, 63, 64, 64));  // A misaligned
  EXPECT_THROW(gemm_sm90_tn(c, 64, a, 64, b, 64, 64, 60, 64, GemmTileN::n128, stream), Error);
  EXPECT_FALSE(gemm_sm90_swiglu_fits(c, b, a, 64, b, 64, 32, 60, 64));  // S not a multiple of 8
  EXPECT_THROW(gemm_sm90_swiglu(c, b, a, 64, b, 64, 32, 60, 64, GemmTileN::n128, stream), Error);
  ASSERT_TRUE(gemm_sm90_swiglu_fits(c, b, a, 64, b, 64, 32, 16, 64));
  EXPECT_THROW(gemm_sm90_swiglu(c, b, a, 64, b, 64, 32, 16, 64, GemmTileN::n256, stream), Error);  // the tile
  EXPECT_FALSE(gemm_sm90_swiglu_backward_fits(c, a, 64, b, 60, c, 32, 64, 64));  // ld of W3t not a multiple of 8
  EXPECT_THROW(gemm_sm90_swiglu_backward(c, a, 64, b, 60, c, 32, 64, 64, GemmTileN::n128, stream), Error);
}

}  // namespace

#endif  // BYTELM_WITH_CUDA
