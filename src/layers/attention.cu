// Fused causal attention on the GPU (see attention_cuda.h): FlashAttention-2 style tensor-core kernels for bf16 at
// Dh 64/128, and a plain warp-per-row kernel for everything else.
//
// Notation: a block owns one (batch row b, head h) and one tile of rows; every warp of it owns 16 of those rows,
// one mma row block, and keeps its accumulators in registers. Scores are taken in log2 units,
// x = scale * log2(e) * q.k, so that every exponential is one exp2; lse is stored in natural-log units as the
// CPU reference has it.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "layers/attention_cuda.h"
#include "layers/cuda_common.cuh"

namespace bytelm {

namespace {

using cuda::allow_smem;
using cuda::cp_async16;
using cuda::cp_async_commit;
using cuda::cp_async_wait;
using cuda::Pack;
using cuda::warp_sum;

constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

// ======================= tensor-core building blocks (bf16) =======================
//
// mma.sync.m16n8k16 with bf16 operands and fp32 accumulators. Lane = 4 g + t (g = lane / 4 in 0..7, t = lane % 4).
// Fragments (PTX ISA, "matrix fragments for mma.m16n8k16"); each 32-bit register holds two bf16, the lower column
// (or k) index in the lower half:
//   A, 16 x 16 (row, k):  a0 = A[g][2t, 2t+1]   a1 = A[g+8][2t, 2t+1]   a2 = A[g][2t+8, 2t+9]   a3 = A[g+8][2t+8, 2t+9]
//   B, 16 x 8  (k, col):  b0 = B[2t, 2t+1][g]   b1 = B[2t+8, 2t+9][g]
//   C, 16 x 8  (fp32):    c0, c1 = C[g][2t, 2t+1]   c2, c3 = C[g+8][2t, 2t+1]
// So a thread's accumulators always cover rows g and g + 8 of the warp's 16 rows ("row halves" r = 0, 1 below:
// C element i of an n-tile is row g + 8 (i / 2), column 2t + i % 2). The C fragments of two neighbouring n-tiles
// (columns 16 kk .. 16 kk + 15) are exactly the A fragment of k-step kk of a following product, which is how
// probabilities go from S = Q K^T into O += P V without leaving registers.
//
// ldmatrix.x4 loads four 8 x 8 bf16 matrices; lanes 8 m .. 8 m + 7 give the addresses of matrix m's 8 rows (16
// bytes each) and lane 4 g + t receives row g, elements 2t, 2t+1 of matrix m in register m; with .trans it
// receives column g, elements 2t, 2t+1 (the matrix transposed).
//
// Shared tiles hold rows of Dh bf16 padded to Ld = Dh + 8 elements: rows then start 144 (or 272) bytes apart,
// 4 banks further each, so the 8 rows of an ldmatrix phase cover the 32 banks once (no conflicts), and every row
// stays 16-byte aligned for cp.async and vector copies.

__device__ inline void mma_bf16_16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ inline void ldmatrix_x4(uint32_t r[4], const bf16* p) {
  unsigned addr = (unsigned)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ inline void ldmatrix_x4_trans(uint32_t r[4], const bf16* p) {
  unsigned addr = (unsigned)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ inline uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x = lo: the lower 16 bits
  return *reinterpret_cast<uint32_t*>(&v);
}

// Tile geometry of the tensor-core kernels for head dim Dh.
template <int Dh>
struct Tiles {
  static constexpr int kWarps = 4, kThreads = 32 * kWarps;
  static constexpr int Ld = Dh + 8;          // padded shared row (see above)
  static constexpr int kRows = 16 * kWarps;  // rows a block owns: queries (forward, dq) or keys (dk/dv)
  static constexpr int kKeys = 64;           // keys of a tile the forward and dq loop over
  // Queries of a tile the dk/dv kernel loops over: fewer at Dh 128, whose two Dh-wide accumulators (dk, dv)
  // already take 128 registers a thread, next to the S and dP tiles of 16 x kQueries.
  static constexpr int kQueries = Dh == 128 ? 32 : 64;
  static_assert(Dh % 16 == 0 && kKeys % 16 == 0 && kQueries % 16 == 0, "mma tiles are 16 wide");
};

// Rows [r0, r0 + R) of one head (row t at base + t * ld) into a shared tile of R rows of Ld elements, by 16-byte
// cp.async (the copy runs while the warps compute on the other stage). Rows at or past T are zero-filled: their
// scores are masked or never stored, and zeros keep every product finite.
template <int Dh, int R, int Ld, int kThreads>
__device__ inline void load_tile_async(bf16* tile, const bf16* base, int r0, int T, int ld) {
  constexpr int kChunks = Dh / 8;  // 16-byte chunks a row
#pragma unroll
  for (int i = threadIdx.x; i < R * kChunks; i += kThreads) {
    int r = i / kChunks, c = (i % kChunks) * 8, t = r0 + r;
    bool valid = t < T;
    cp_async16(tile + r * Ld + c, base + (size_t)(valid ? t : 0) * ld + c, valid);  // a valid address either way
  }
}

// c[16 x N] += A B^T for this warp: A is 16 shared rows, B is N shared rows, both K wide (c[i][j] = a_i . b_j).
// S = Q K^T and dP = dO V^T (forward, dq), S^T = K Q^T and dP^T = V dO^T (dk/dv) are all this product.
template <int K, int N, int Ld>
__device__ inline void mma_rows_dot_rows(float c[N / 8][4], const bf16* a, const bf16* b) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int kk = 0; kk < K / 16; kk++) {
    uint32_t af[4];  // matrices: rows 0-7 / 8-15 x k 0-7, then the same at k 8-15: a0, a1, a2, a3
    ldmatrix_x4(af, a + (lane % 16) * Ld + kk * 16 + (lane / 16) * 8);
#pragma unroll
    for (int np = 0; np < N / 16; np++) {
      // matrices: (b rows 0-7, k 0-7), (0-7, k 8-15), (8-15, k 0-7), (8-15, k 8-15): b0, b1 of n-tile 2 np, then
      // of n-tile 2 np + 1 (B[k][n] = b_n[k], so B's column g is b row g: a plain, untransposed load)
      uint32_t bf[4];
      ldmatrix_x4(bf, b + (np * 16 + (lane / 16) * 8 + lane % 8) * Ld + kk * 16 + (lane / 8 % 2) * 8);
      mma_bf16_16816(c[2 * np], af, bf[0], bf[1]);
      mma_bf16_16816(c[2 * np + 1], af, bf[2], bf[3]);
    }
  }
}

// acc[16 x N] += P M for this warp: P [16 x K] is held as C fragments of an earlier product (rounded to bf16
// here), M is K shared rows of N. O += P V (forward), dQ += dS K (dq), dV += P^T dO and dK += dS^T Q (dk/dv).
template <int N, int K, int Ld>
__device__ inline void mma_frag_times_rows(float acc[N / 8][4], const float p[K / 8][4], const bf16* m) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int kk = 0; kk < K / 16; kk++) {
    const uint32_t af[4] = {pack_bf16(p[2 * kk][0], p[2 * kk][1]), pack_bf16(p[2 * kk][2], p[2 * kk][3]),
                            pack_bf16(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                            pack_bf16(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
    for (int np = 0; np < N / 16; np++) {
      // matrices: (m rows 0-7, cols 0-7), (rows 8-15, cols 0-7), (0-7, 8-15), (8-15, 8-15), transposed: b0, b1
      // of n-tile 2 np, then of n-tile 2 np + 1 (B[k][n] = m_k[n], so b0 = column g of rows 2t, 2t+1)
      uint32_t bf[4];
      ldmatrix_x4_trans(bf, m + (kk * 16 + (lane / 8 % 2) * 8 + lane % 8) * Ld + np * 16 + (lane / 16) * 8);
      mma_bf16_16816(acc[2 * np], af, bf[0], bf[1]);
      mma_bf16_16816(acc[2 * np + 1], af, bf[2], bf[3]);
    }
  }
}

// A warp's 16 x Dh accumulators, row half r times mul[r], rounded to bf16 into rows r0 .. r0 + 15 (those below T)
// of dst (row stride ld). Staged through the warp's own 16 rows of a shared tile (which no other warp reads), so
// the global stores are 16 bytes wide and coalesced.
template <int Dh, int Ld>
__device__ inline void store_warp_rows(bf16* dst, int ld, int r0, int T, const float acc[Dh / 8][4],
                                       const float mul[2], bf16* stage) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int dt = 0; dt < Dh / 8; dt++)
#pragma unroll
    for (int r = 0; r < 2; r++)
      *reinterpret_cast<__nv_bfloat162*>(stage + (lane / 4 + 8 * r) * Ld + dt * 8 + 2 * (lane % 4)) =
          __floats2bfloat162_rn(acc[dt][2 * r] * mul[r], acc[dt][2 * r + 1] * mul[r]);
  __syncwarp();
  constexpr int kChunks = Dh / 8;
#pragma unroll
  for (int i = lane; i < 16 * kChunks; i += 32) {
    int r = i / kChunks, c = (i % kChunks) * 8;
    if (r0 + r < T)
      *reinterpret_cast<uint4*>(dst + (size_t)(r0 + r) * ld + c) = *reinterpret_cast<const uint4*>(stage + r * Ld + c);
  }
}

// ======================= tensor-core kernels =======================
// Grids: x = b * H + h, y = row tile. Forward and dq run the tiles with the most keys (the last) first, dk/dv the
// tiles with the most queries (the first), so the long blocks do not trail at the end.

template <int Dh>
constexpr size_t forward_smem() {  // Q tile, then K and V tiles in two stages each
  using X = Tiles<Dh>;
  return (size_t)(X::kRows + 4 * X::kKeys) * X::Ld * sizeof(bf16);
}

template <int Dh>
__global__ void __launch_bounds__(Tiles<Dh>::kThreads)
    attention_forward_tc_kernel(bf16* o, float* lse, const bf16* q, const bf16* k, const bf16* v, int T, int H,
                                int ld, float scale_log2) {
  using X = Tiles<Dh>;
  constexpr int Ld = X::Ld, Bq = X::kRows, Bk = X::kKeys;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);  // [Bq][Ld]
  bf16* sk = sq + Bq * Ld;                   // [2][Bk][Ld]
  bf16* sv = sk + 2 * Bk * Ld;               // [2][Bk][Ld]
  const int bh = blockIdx.x, b = bh / H, h = bh % H;
  const int q0 = (gridDim.y - 1 - blockIdx.y) * Bq;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const size_t head = (size_t)b * T * ld + (size_t)h * Dh;
  const int n_tiles = (min(T, q0 + Bq) + Bk - 1) / Bk;  // key tiles with a key at or before some row of the block

  load_tile_async<Dh, Bq, Ld, X::kThreads>(sq, q + head, q0, T, ld);
  load_tile_async<Dh, Bk, Ld, X::kThreads>(sk, k + head, 0, T, ld);
  load_tile_async<Dh, Bk, Ld, X::kThreads>(sv, v + head, 0, T, ld);
  cp_async_commit();

  const int w0 = q0 + 16 * warp;  // the warp's first row; this thread's rows are row and row + 8
  const int row = w0 + lane / 4;
  float acc[Dh / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY};  // running max of each row half, log2 units
  float l[2] = {0.f, 0.f};              // running sum of exp2(x - m) over this thread's columns
  for (int j = 0; j < n_tiles; j++) {
    if (j + 1 < n_tiles) {  // prefetch the next tile into the other stage (last read in iteration j - 1)
      const int st = (j + 1) & 1;
      load_tile_async<Dh, Bk, Ld, X::kThreads>(sk + st * Bk * Ld, k + head, (j + 1) * Bk, T, ld);
      load_tile_async<Dh, Bk, Ld, X::kThreads>(sv + st * Bk * Ld, v + head, (j + 1) * Bk, T, ld);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int k0 = j * Bk;
    const bf16* kt = sk + (j & 1) * Bk * Ld;
    const bf16* vt = sv + (j & 1) * Bk * Ld;
    if (k0 <= w0 + 15) {  // else every key of the tile is after every row of the warp
      float s[Bk / 8][4] = {};
      mma_rows_dot_rows<Dh, Bk, Ld>(s, sq + 16 * warp * Ld, kt);
      // Keys after a row are masked; keys at or past T are after every row below T, and rows at or past T are
      // never stored. Only tiles reaching past the warp's first row need the test.
      const bool diagonal = k0 + Bk - 1 > w0;
#pragma unroll
      for (int r = 0; r < 2; r++) {
        float mx = m[r];
#pragma unroll
        for (int nt = 0; nt < Bk / 8; nt++)
#pragma unroll
          for (int e = 0; e < 2; e++) {
            float x = s[nt][2 * r + e] * scale_log2;
            if (diagonal && k0 + nt * 8 + 2 * (lane % 4) + e > row + 8 * r) x = -INFINITY;
            s[nt][2 * r + e] = x;
            mx = fmaxf(mx, x);
          }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));  // the 4 lanes of a quad share the row
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        // A row that has met only masked keys keeps mx = -inf: subtract 0 then, so exp2 gives 0 and not NaN.
        // (Tiles run in key order and key 0 is visible to every row, so this is a guard, not a path.)
        const float base = mx == -INFINITY ? 0.f : mx;
        const float corr = exp2f(m[r] - base);  // 0 on the first tile (m = -inf)
        m[r] = mx;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < Bk / 8; nt++)
#pragma unroll
          for (int e = 0; e < 2; e++) sum += s[nt][2 * r + e] = exp2f(s[nt][2 * r + e] - base);
        l[r] = l[r] * corr + sum;
#pragma unroll
        for (int dt = 0; dt < Dh / 8; dt++) acc[dt][2 * r] *= corr, acc[dt][2 * r + 1] *= corr;
      }
      mma_frag_times_rows<Dh, Bk, Ld>(acc, s, vt);
    }
    __syncthreads();  // every warp is done with stage j & 1 before iteration j + 1 refills it
  }

  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    inv[r] = 1.f / l[r];  // l >= 1 for every row: its maximum contributes exp2(0)
    const int t = row + 8 * r;
    if (lane % 4 == 0 && t < T) lse[(size_t)bh * T + t] = (m[r] + log2f(l[r])) * kLn2;
  }
  store_warp_rows<Dh, Ld>(o + (size_t)b * T * H * Dh + (size_t)h * Dh, H * Dh, w0, T, acc, inv, sq + 16 * warp * Ld);
}

template <int Dh>
constexpr size_t dq_smem() {  // Q and dO tiles, then K and V tiles in two stages each
  using X = Tiles<Dh>;
  return (size_t)(2 * X::kRows + 4 * X::kKeys) * X::Ld * sizeof(bf16);
}

// dQ = scale dS K over the key tiles at or before the block's rows, with P = exp2(x - lse) and
// dS = P (dO V^T - delta) recomputed tile by tile.
template <int Dh>
__global__ void __launch_bounds__(Tiles<Dh>::kThreads)
    attention_dq_tc_kernel(bf16* dq, const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
                           const float* delta, int T, int H, int ld, float scale, float scale_log2) {
  using X = Tiles<Dh>;
  constexpr int Ld = X::Ld, Bq = X::kRows, Bk = X::kKeys;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);  // [Bq][Ld]
  bf16* sdo = sq + Bq * Ld;                  // [Bq][Ld]
  bf16* sk = sdo + Bq * Ld;                  // [2][Bk][Ld]
  bf16* sv = sk + 2 * Bk * Ld;               // [2][Bk][Ld]
  const int bh = blockIdx.x, b = bh / H, h = bh % H;
  const int q0 = (gridDim.y - 1 - blockIdx.y) * Bq;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const size_t head = (size_t)b * T * ld + (size_t)h * Dh, dense_head = (size_t)b * T * H * Dh + (size_t)h * Dh;
  const int n_tiles = (min(T, q0 + Bq) + Bk - 1) / Bk;

  load_tile_async<Dh, Bq, Ld, X::kThreads>(sq, q + head, q0, T, ld);
  load_tile_async<Dh, Bq, Ld, X::kThreads>(sdo, dout + dense_head, q0, T, H * Dh);
  load_tile_async<Dh, Bk, Ld, X::kThreads>(sk, k + head, 0, T, ld);
  load_tile_async<Dh, Bk, Ld, X::kThreads>(sv, v + head, 0, T, ld);
  cp_async_commit();

  const int w0 = q0 + 16 * warp, row = w0 + lane / 4;
  float row_lse[2], row_delta[2];  // lse in log2 units; rows past T get finite stand-ins (never stored)
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int t = row + 8 * r;
    row_lse[r] = t < T ? lse[(size_t)bh * T + t] * kLog2e : 0.f;
    row_delta[r] = t < T ? delta[(size_t)bh * T + t] : 0.f;
  }
  float acc[Dh / 8][4] = {};
  for (int j = 0; j < n_tiles; j++) {
    if (j + 1 < n_tiles) {
      const int st = (j + 1) & 1;
      load_tile_async<Dh, Bk, Ld, X::kThreads>(sk + st * Bk * Ld, k + head, (j + 1) * Bk, T, ld);
      load_tile_async<Dh, Bk, Ld, X::kThreads>(sv + st * Bk * Ld, v + head, (j + 1) * Bk, T, ld);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int k0 = j * Bk;
    const bf16* kt = sk + (j & 1) * Bk * Ld;
    const bf16* vt = sv + (j & 1) * Bk * Ld;
    if (k0 <= w0 + 15) {
      float s[Bk / 8][4] = {}, dp[Bk / 8][4] = {};
      mma_rows_dot_rows<Dh, Bk, Ld>(s, sq + 16 * warp * Ld, kt);    // S = Q K^T
      mma_rows_dot_rows<Dh, Bk, Ld>(dp, sdo + 16 * warp * Ld, vt);  // dP = dO V^T
      const bool diagonal = k0 + Bk - 1 > w0;
#pragma unroll
      for (int nt = 0; nt < Bk / 8; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
          const int r = i / 2, key = k0 + nt * 8 + 2 * (lane % 4) + i % 2;
          float p = exp2f(s[nt][i] * scale_log2 - row_lse[r]);
          if (diagonal && key > row + 8 * r) p = 0.f;
          s[nt][i] = p * (dp[nt][i] - row_delta[r]);  // dS
        }
      mma_frag_times_rows<Dh, Bk, Ld>(acc, s, kt);  // dQ += dS K
    }
    __syncthreads();
  }
  const float mul[2] = {scale, scale};
  store_warp_rows<Dh, Ld>(dq + head, ld, w0, T, acc, mul, sq + 16 * warp * Ld);
}

template <int Dh>
constexpr size_t dkdv_smem() {  // K and V tiles, then Q and dO tiles and their lse and delta in two stages each
  using X = Tiles<Dh>;
  return (size_t)(2 * X::kRows + 4 * X::kQueries) * X::Ld * sizeof(bf16) + 4 * X::kQueries * sizeof(float);
}

// dV = P^T dO and dK = scale dS^T Q over the query tiles at or after the block's keys. Each warp computes the
// transposed score tile S^T = K Q^T of its 16 keys, so P^T and dS^T are already in the A-fragment layout.
template <int Dh>
__global__ void __launch_bounds__(Tiles<Dh>::kThreads)
    attention_dkdv_tc_kernel(bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                             const float* lse, const float* delta, int T, int H, int ld, float scale,
                             float scale_log2) {
  using X = Tiles<Dh>;
  constexpr int Ld = X::Ld, Bk = X::kRows, Bq = X::kQueries;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sk = reinterpret_cast<bf16*>(smem);                  // [Bk][Ld]
  bf16* sv = sk + Bk * Ld;                                   // [Bk][Ld]
  bf16* sq = sv + Bk * Ld;                                   // [2][Bq][Ld]
  bf16* sdo = sq + 2 * Bq * Ld;                              // [2][Bq][Ld]
  float* s_lse = reinterpret_cast<float*>(sdo + 2 * Bq * Ld);  // [2][Bq], log2 units
  float* s_delta = s_lse + 2 * Bq;                           // [2][Bq]
  const int bh = blockIdx.x, b = bh / H, h = bh % H;
  const int k0 = blockIdx.y * Bk;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const size_t head = (size_t)b * T * ld + (size_t)h * Dh, dense_head = (size_t)b * T * H * Dh + (size_t)h * Dh;
  const int i0 = k0 / Bq, n_tiles = (T + Bq - 1) / Bq;  // query tiles holding a query at or after some key

  // Query tile i into stage st. lse and delta go by plain stores: the stage was last read before the barrier
  // that ended the previous iteration, and is next read after the barrier of the next one. Queries past T get
  // finite stand-ins; the mask zeroes their P and dS (their dO rows are zero too).
  auto load_queries = [&](int i, int st) {
    const int qi0 = i * Bq;
    load_tile_async<Dh, Bq, Ld, X::kThreads>(sq + st * Bq * Ld, q + head, qi0, T, ld);
    load_tile_async<Dh, Bq, Ld, X::kThreads>(sdo + st * Bq * Ld, dout + dense_head, qi0, T, H * Dh);
    cp_async_commit();
    for (int c = threadIdx.x; c < Bq; c += X::kThreads) {
      const int t = qi0 + c;
      s_lse[st * Bq + c] = t < T ? lse[(size_t)bh * T + t] * kLog2e : 0.f;
      s_delta[st * Bq + c] = t < T ? delta[(size_t)bh * T + t] : 0.f;
    }
  };
  load_tile_async<Dh, Bk, Ld, X::kThreads>(sk, k + head, k0, T, ld);
  load_tile_async<Dh, Bk, Ld, X::kThreads>(sv, v + head, k0, T, ld);
  load_queries(i0, 0);  // its commit closes the group with K and V too

  const int kw = k0 + 16 * warp, key = kw + lane / 4;  // the warp's first key; this thread's keys: key, key + 8
  float dk_acc[Dh / 8][4] = {}, dv_acc[Dh / 8][4] = {};
  for (int i = i0; i < n_tiles; i++) {
    const int st = (i - i0) & 1;
    if (i + 1 < n_tiles) {
      load_queries(i + 1, st ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int q0 = i * Bq;
    const bf16* qt = sq + st * Bq * Ld;
    const bf16* dot = sdo + st * Bq * Ld;
    if (q0 + Bq - 1 >= kw) {  // else every query of the tile is before every key of the warp
      float s[Bq / 8][4] = {}, dp[Bq / 8][4] = {};
      mma_rows_dot_rows<Dh, Bq, Ld>(s, sk + 16 * warp * Ld, qt);    // S^T = K Q^T  [16 keys x Bq queries]
      mma_rows_dot_rows<Dh, Bq, Ld>(dp, sv + 16 * warp * Ld, dot);  // dP^T = V dO^T
      // masked: queries before a key, and queries at or past T (which the sums over queries must not see)
      const bool edge = q0 < kw + 15 || q0 + Bq > T;
#pragma unroll
      for (int nt = 0; nt < Bq / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int c = nt * 8 + 2 * (lane % 4) + e % 2, query = q0 + c;
          float p = exp2f(s[nt][e] * scale_log2 - s_lse[st * Bq + c]);
          if (edge && (query < key + 8 * (e / 2) || query >= T)) p = 0.f;
          s[nt][e] = p;                                          // P^T
          dp[nt][e] = p * (dp[nt][e] - s_delta[st * Bq + c]);  // dS^T
        }
      mma_frag_times_rows<Dh, Bq, Ld>(dv_acc, s, dot);  // dV += P^T dO
      mma_frag_times_rows<Dh, Bq, Ld>(dk_acc, dp, qt);  // dK += dS^T Q
    }
    __syncthreads();
  }
  const float one[2] = {1.f, 1.f}, mul[2] = {scale, scale};
  store_warp_rows<Dh, Ld>(dk + head, ld, kw, T, dk_acc, mul, sk + 16 * warp * Ld);
  store_warp_rows<Dh, Ld>(dv + head, ld, kw, T, dv_acc, one, sv + 16 * warp * Ld);
}

// ======================= plain kernels (any storage type, Dh <= 256) =======================
// A warp per row; lane l holds elements l, l + 32, ... of each row vector in registers, and each dot product is a
// warp sum. Slow (a shuffle reduction per key) but straightforward, in fp32 arithmetic throughout.

constexpr int kPlainMaxDh = 256, kPer = kPlainMaxDh / 32;

template <class A>
__device__ inline void load_row(float x[kPer], const A* row, int Dh) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int j = 0; j < kPer; j++) x[j] = lane + 32 * j < Dh ? (float)row[lane + 32 * j] : 0.f;
}

template <class A>
__device__ inline void store_row(A* row, const float x[kPer], float mul, int Dh) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int j = 0; j < kPer; j++)
    if (lane + 32 * j < Dh) row[lane + 32 * j] = (A)(x[j] * mul);
}

__device__ inline float warp_dot(const float a[kPer], const float b[kPer]) {
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < kPer; j++) s += a[j] * b[j];
  return warp_sum(s);
}

// The row (b, h, t) of a warp, t fastest; false for the warps past the last row (which return whole).
struct PlainRow {
  int b, h, t;
  size_t bh;
};
__device__ inline bool plain_row(PlainRow& p, int B, int H, int T) {
  const size_t w = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  if (w >= (size_t)B * H * T) return false;
  p.t = (int)(w % T);
  p.bh = w / T;
  p.h = (int)(p.bh % H);
  p.b = (int)(p.bh / H);
  return true;
}

template <class A>
__global__ void attention_forward_plain_kernel(A* o, float* lse, const A* q, const A* k, const A* v, int B, int T,
                                               int H, int Dh, int ld, float scale) {
  PlainRow p;
  if (!plain_row(p, B, H, T)) return;
  const A* qh = q + (size_t)p.b * T * ld + (size_t)p.h * Dh;
  const A* kh = k + (qh - q);
  const A* vh = v + (qh - q);
  float qr[kPer], x[kPer], acc[kPer] = {};
  load_row(qr, qh + (size_t)p.t * ld, Dh);
  float m = -INFINITY, l = 0.f;
  for (int s = 0; s <= p.t; s++) {
    load_row(x, kh + (size_t)s * ld, Dh);
    const float score = scale * warp_dot(qr, x);
    const float m_new = fmaxf(m, score);
    const float corr = expf(m - m_new), e = expf(score - m_new);  // corr = 0 at s = 0
    l = l * corr + e;
    load_row(x, vh + (size_t)s * ld, Dh);
#pragma unroll
    for (int j = 0; j < kPer; j++) acc[j] = acc[j] * corr + e * x[j];
    m = m_new;
  }
  store_row(o + ((size_t)p.b * T + p.t) * H * Dh + (size_t)p.h * Dh, acc, 1.f / l, Dh);
  if (threadIdx.x % 32 == 0) lse[p.bh * T + p.t] = m + logf(l);
}

// A warp per query row t: dq_t = scale sum_{s <= t} ds_ts k_s.
template <class A>
__global__ void attention_dq_plain_kernel(A* dq, const A* dout, const A* q, const A* k, const A* v, const float* lse,
                                          const float* delta, int B, int T, int H, int Dh, int ld, float scale) {
  PlainRow p;
  if (!plain_row(p, B, H, T)) return;
  const size_t head = (size_t)p.b * T * ld + (size_t)p.h * Dh;
  float qr[kPer], dor[kPer], x[kPer], acc[kPer] = {};
  load_row(qr, q + head + (size_t)p.t * ld, Dh);
  load_row(dor, dout + ((size_t)p.b * T + p.t) * H * Dh + (size_t)p.h * Dh, Dh);
  const float row_lse = lse[p.bh * T + p.t], row_delta = delta[p.bh * T + p.t];
  for (int s = 0; s <= p.t; s++) {
    load_row(x, v + head + (size_t)s * ld, Dh);
    const float dp = warp_dot(dor, x);
    load_row(x, k + head + (size_t)s * ld, Dh);
    const float ds = expf(scale * warp_dot(qr, x) - row_lse) * (dp - row_delta);
#pragma unroll
    for (int j = 0; j < kPer; j++) acc[j] += ds * x[j];
  }
  store_row(dq + head + (size_t)p.t * ld, acc, scale, Dh);
}

// A warp per key row s: dv_s = sum_{t >= s} p_ts dout_t, dk_s = scale sum_{t >= s} ds_ts q_t.
template <class A>
__global__ void attention_dkdv_plain_kernel(A* dk, A* dv, const A* dout, const A* q, const A* k, const A* v,
                                            const float* lse, const float* delta, int B, int T, int H, int Dh, int ld,
                                            float scale) {
  PlainRow p;
  if (!plain_row(p, B, H, T)) return;
  const int s = p.t;
  const size_t head = (size_t)p.b * T * ld + (size_t)p.h * Dh, dense_head = (size_t)p.b * T * H * Dh + (size_t)p.h * Dh;
  float kr[kPer], vr[kPer], qr[kPer], dor[kPer], dk_acc[kPer] = {}, dv_acc[kPer] = {};
  load_row(kr, k + head + (size_t)s * ld, Dh);
  load_row(vr, v + head + (size_t)s * ld, Dh);
  for (int t = s; t < T; t++) {
    load_row(qr, q + head + (size_t)t * ld, Dh);
    load_row(dor, dout + dense_head + (size_t)t * H * Dh, Dh);
    const float pr = expf(scale * warp_dot(qr, kr) - lse[p.bh * T + t]);
    const float ds = pr * (warp_dot(dor, vr) - delta[p.bh * T + t]);
#pragma unroll
    for (int j = 0; j < kPer; j++) dv_acc[j] += pr * dor[j], dk_acc[j] += ds * qr[j];
  }
  store_row(dk + head + (size_t)s * ld, dk_acc, scale, Dh);
  store_row(dv + head + (size_t)s * ld, dv_acc, 1.f, Dh);
}

// delta[b, h, t] = dout[b, t, h, :] . o[b, t, h, :] in fp32 (both paths): 8 lanes a row, each summing packs 8
// apart, then three shuffles; rows in memory order (b, t, h).
constexpr int kDeltaLanes = 8;

template <class A>
__global__ void attention_delta_kernel(float* delta, const A* dout, const A* o, int B, int T, int H, int Dh, bool vec) {
  constexpr int n = Pack<A>::n;
  const size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / kDeltaLanes, rows = (size_t)B * T * H;
  const int lane = threadIdx.x % kDeltaLanes;
  float s = 0.f;
  if (row < rows)
    for (int c = lane * n; c < Dh; c += kDeltaLanes * n) {
      Pack<A> a = cuda::load_pack(dout + row * Dh, c, Dh, vec), x = cuda::load_pack(o + row * Dh, c, Dh, vec);
#pragma unroll
      for (int j = 0; j < n; j++) s += a.get(j) * x.get(j);
    }
  for (int off = kDeltaLanes / 2; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);  // whole warps
  if (row < rows && lane == 0) {
    const size_t bt = row / H;
    const int h = (int)(row % H), t = (int)(bt % T), b = (int)(bt / T);
    delta[((size_t)b * H + h) * T + t] = s;
  }
}

// ======================= host side =======================

void check_shape(AttentionShape s) {
  if (s.B < 1 || s.T < 1 || s.H < 1 || s.Dh < 1)
    throw Error("attention: B, T, H and Dh must be positive (got " + std::to_string(s.B) + ", " +
                std::to_string(s.T) + ", " + std::to_string(s.H) + ", " + std::to_string(s.Dh) + ")");
  if (s.stride() < s.H * s.Dh)
    throw Error("attention: qkv stride " + std::to_string(s.stride()) + " is below H * Dh = " +
                std::to_string(s.H * s.Dh));
  if (s.Dh > kPlainMaxDh)
    throw Error("attention on the GPU: head dim " + std::to_string(s.Dh) + " is over " +
                std::to_string(kPlainMaxDh) + " (64 and 128 run on tensor cores)");
  if ((s.T + 15) / 16 > 65535) throw Error("attention on the GPU: T = " + std::to_string(s.T) + " is too long");
}

bool all_aligned16(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (!cuda::aligned16(p)) return false;
  return true;
}

// Blocks of 256 threads, a warp per row (b, h, t).
unsigned plain_blocks(AttentionShape s) { return cuda::blocks_for((size_t)s.B * s.H * s.T * 32); }

template <int Dh>
void forward_tc(bf16* o, float* lse, const bf16* q, const bf16* k, const bf16* v, AttentionShape s, float scale,
                cudaStream_t stream) {
  using X = Tiles<Dh>;
  constexpr size_t smem = forward_smem<Dh>();
  static const bool allowed = (allow_smem(attention_forward_tc_kernel<Dh>, smem), true);
  (void)allowed;
  dim3 grid(s.B * s.H, (s.T + X::kRows - 1) / X::kRows);
  attention_forward_tc_kernel<Dh><<<grid, X::kThreads, smem, stream>>>(o, lse, q, k, v, s.T, s.H, s.stride(),
                                                                       scale * kLog2e);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <int Dh>
void backward_tc(bf16* dq, bf16* dk, bf16* dv, const float* delta, const bf16* dout, const bf16* q, const bf16* k,
                 const bf16* v, const float* lse, AttentionShape s, float scale, cudaStream_t stream) {
  using X = Tiles<Dh>;
  constexpr size_t dkdv = dkdv_smem<Dh>(), dqs = dq_smem<Dh>();
  static const bool allowed =
      (allow_smem(attention_dkdv_tc_kernel<Dh>, dkdv), allow_smem(attention_dq_tc_kernel<Dh>, dqs), true);
  (void)allowed;
  dim3 grid(s.B * s.H, (s.T + X::kRows - 1) / X::kRows);  // key tiles (dk/dv), query tiles (dq): both kRows
  attention_dkdv_tc_kernel<Dh><<<grid, X::kThreads, dkdv, stream>>>(dk, dv, dout, q, k, v, lse, delta, s.T, s.H,
                                                                    s.stride(), scale, scale * kLog2e);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  attention_dq_tc_kernel<Dh><<<grid, X::kThreads, dqs, stream>>>(dq, dout, q, k, v, lse, delta, s.T, s.H, s.stride(),
                                                                 scale, scale * kLog2e);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

bool attention_uses_tensor_cores(AttentionShape s) { return (s.Dh == 64 || s.Dh == 128) && s.stride() % 8 == 0; }

template <class A>
void attention_forward_cuda(A* o, float* lse, const A* q, const A* k, const A* v, AttentionShape s, float scale,
                            cudaStream_t stream) {
  check_shape(s);
  if constexpr (std::is_same_v<A, bf16>) {
    if (attention_uses_tensor_cores(s) && all_aligned16({o, q, k, v})) {
      if (s.Dh == 64) return forward_tc<64>(o, lse, q, k, v, s, scale, stream);
      return forward_tc<128>(o, lse, q, k, v, s, scale, stream);
    }
  }
  attention_forward_plain_kernel<A><<<plain_blocks(s), cuda::kThreads, 0, stream>>>(o, lse, q, k, v, s.B, s.T, s.H,
                                                                                   s.Dh, s.stride(), scale);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
void attention_backward_cuda(A* dq, A* dk, A* dv, float* delta, const A* dout, const A* q, const A* k, const A* v,
                             const A* o, const float* lse, AttentionShape s, float scale, cudaStream_t stream) {
  check_shape(s);
  const bool vec = cuda::packable(dout, s.Dh) && cuda::packable(o, s.Dh);
  attention_delta_kernel<A><<<cuda::blocks_for((size_t)s.B * s.T * s.H * kDeltaLanes), cuda::kThreads, 0, stream>>>(
      delta, dout, o, s.B, s.T, s.H, s.Dh, vec);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  if constexpr (std::is_same_v<A, bf16>) {
    if (attention_uses_tensor_cores(s) && all_aligned16({dq, dk, dv, dout, q, k, v})) {
      if (s.Dh == 64) return backward_tc<64>(dq, dk, dv, delta, dout, q, k, v, lse, s, scale, stream);
      return backward_tc<128>(dq, dk, dv, delta, dout, q, k, v, lse, s, scale, stream);
    }
  }
  attention_dkdv_plain_kernel<A><<<plain_blocks(s), cuda::kThreads, 0, stream>>>(
      dk, dv, dout, q, k, v, lse, delta, s.B, s.T, s.H, s.Dh, s.stride(), scale);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  attention_dq_plain_kernel<A><<<plain_blocks(s), cuda::kThreads, 0, stream>>>(dq, dout, q, k, v, lse, delta, s.B,
                                                                              s.T, s.H, s.Dh, s.stride(), scale);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

namespace {

constexpr int kDecodeThreads = 128;

// A block per (row b, head h), as attention_decode's loop body: cache the new key and value, then the scores of
// positions first..pos (oldest first) into scores, their softmax, and o = sum_j p_j / z v_j in j order.
template <class T>
__global__ void __launch_bounds__(kDecodeThreads)
    attention_decode_kernel(T* o, T* k_cache, T* v_cache, const T* q, const T* k, const T* v, int qkv_stride, int H,
                            int Dh, int slots, int pos, float scale, float* scores) {
  __shared__ float warp_vals[kDecodeThreads / 32];
  int b = blockIdx.x / H, h = blockIdx.x % H, D = H * Dh, first = pos - slots + 1 > 0 ? pos - slots + 1 : 0,
      n = pos - first + 1;
  size_t head = (size_t)h * Dh, from = (size_t)b * qkv_stride + head;
  for (int i = threadIdx.x; i < Dh; i += blockDim.x) {
    size_t at = ((size_t)b * slots + pos % slots) * D + head + i;
    k_cache[at] = k[from + i];
    v_cache[at] = v[from + i];
  }
  __syncthreads();
  auto slot = [&](int j) { return ((size_t)b * slots + (first + j) % slots) * D + head; };
  float* p = scores + (size_t)blockIdx.x * slots;
  const T* qh = q + from;
  // every thread a set of positions; the block's reductions go warps by shuffles, then the warps in order
  auto block_reduce = [&](float x, bool is_max) {
    x = is_max ? cuda::warp_max(x) : cuda::warp_sum(x);
    if (threadIdx.x % 32 == 0) warp_vals[threadIdx.x / 32] = x;
    __syncthreads();
    float r = warp_vals[0];
    for (int w = 1; w < kDecodeThreads / 32; w++) r = is_max ? fmaxf(r, warp_vals[w]) : r + warp_vals[w];
    __syncthreads();
    return r;
  };
  float m = -INFINITY;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    const T* kj = k_cache + slot(j);
    float s = 0.f;
    for (int i = 0; i < Dh; i++) s += (float)qh[i] * (float)kj[i];
    p[j] = scale * s;
    m = fmaxf(m, p[j]);
  }
  m = block_reduce(m, true);
  float z = 0.f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) z += p[j] = expf(p[j] - m);
  z = block_reduce(z, false);  // its barriers also make every p[j] visible to the whole block
  for (int i = threadIdx.x; i < Dh; i += blockDim.x) {
    float acc = 0.f;
    for (int j = 0; j < n; j++) acc += p[j] / z * (float)v_cache[slot(j) + i];
    o[(size_t)b * D + head + i] = (T)acc;
  }
}

}  // namespace

size_t attention_decode_cuda_scratch(int B, int H, int slots) { return (size_t)B * H * slots; }

template <class A>
void attention_decode_cuda(A* o, A* k_cache, A* v_cache, const A* q, const A* k, const A* v, int qkv_stride, int B,
                           int H, int Dh, int slots, int pos, float scale, float* scores, cudaStream_t stream) {
  if (B * H == 0) return;
  attention_decode_kernel<A><<<B * H, kDecodeThreads, 0, stream>>>(o, k_cache, v_cache, q, k, v, qkv_stride, H, Dh,
                                                                   slots, pos, scale, scores);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

#define BYTELM_INSTANTIATE(A)                                                                                    \
  template void attention_decode_cuda<A>(A*, A*, A*, const A*, const A*, const A*, int, int, int, int, int, int, \
                                         float, float*, cudaStream_t);                                           \
  template void attention_forward_cuda<A>(A*, float*, const A*, const A*, const A*, AttentionShape, float,       \
                                          cudaStream_t);                                                         \
  template void attention_backward_cuda<A>(A*, A*, A*, float*, const A*, const A*, const A*, const A*, const A*, \
                                           const float*, AttentionShape, float, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
