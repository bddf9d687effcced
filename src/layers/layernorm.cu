#include "core/bf16.h"
#include "layers/cuda_common.cuh"
#include "layers/layernorm_cuda.h"

#include <string>
#include <type_traits>

#include "core/error.h"

namespace bytelm {

using namespace cuda;

namespace {

constexpr int kWarps = kThreads / 32;  // forward and dx: warps a block
constexpr int kSumRows = 128;          // dw/db: about this many rows a block, up to
constexpr int kSumMaxBlocks = 512;     // this many blocks; fixed by N alone, so is the summation order

int sum_blocks(int N) {
  int g = (N + kSumRows - 1) / kSumRows;
  return g < kSumMaxBlocks ? g : kSumMaxBlocks;
}

// Forward: a warp takes R rows at once (so narrow rows still keep several loads in flight),
// each held in registers as K packs a lane (lane l holds packs l, l + 32, ...): every row is read once
// and written once, all reads before any write. Rows past N are skipped (the warp's shuffles still
// run on all lanes).
template <class T, int K, int R>
__global__ void layernorm_forward_kernel(T* y, float* mean, float* rstd, const T* x, const float* w, const float* b,
                                         int N, int C, bool vec) {
  constexpr int n = Pack<T>::n;
  int row0 = (blockIdx.x * kWarps + threadIdx.x / 32) * R, lane = threadIdx.x % 32;
  if (row0 >= N) return;
  Pack<T> xp[R][K];
  // With several rows a warp, this lane's columns of w and b sit in registers, read once for all of them;
  // with one, they are read where used (registers would cost occupancy).
  constexpr bool kHold = R > 1;
  float m[R], r[R], wl[kHold ? K : 1][n], bl[kHold ? K : 1][n];
  if constexpr (kHold) {
#pragma unroll
    for (int k = 0; k < K; k++)
#pragma unroll
      for (int j = 0; j < n; j++) {
        int c = (lane + 32 * k) * n + j;
        wl[k][j] = c < C ? w[c] : 0.f;
        bl[k][j] = c < C ? b[c] : 0.f;
      }
  }
#pragma unroll
  for (int q = 0; q < R; q++) {
    float s = 0.f;
    if (row0 + q < N)
#pragma unroll
      for (int k = 0; k < K; k++) {
        xp[q][k] = load_pack(x + (size_t)(row0 + q) * C, (lane + 32 * k) * n, C, vec);
#pragma unroll
        for (int j = 0; j < n; j++) s += xp[q][k].get(j);  // columns past C read as 0
      }
    m[q] = warp_sum(s) / C;
  }
#pragma unroll
  for (int q = 0; q < R; q++) {
    float v = 0.f;  // two passes over the registers: no cancellation from E[x^2] - m^2
    if (row0 + q < N)
#pragma unroll
      for (int k = 0; k < K; k++)
#pragma unroll
        for (int j = 0; j < n; j++) {
          float xc = (lane + 32 * k) * n + j < C ? xp[q][k].get(j) - m[q] : 0.f;
          v += xc * xc;
        }
    r[q] = 1.f / sqrtf(warp_sum(v) / C + 1e-5f);
  }
#pragma unroll
  for (int q = 0; q < R; q++) {
    if (row0 + q >= N) break;
#pragma unroll
    for (int k = 0; k < K; k++) {
      int c0 = (lane + 32 * k) * n;
      Pack<T> yp;
#pragma unroll
      for (int j = 0; j < n; j++)
        if constexpr (kHold) {
          yp.set(j, (xp[q][k].get(j) - m[q]) * r[q] * wl[k][j] + bl[k][j]);  // past C: not stored
        } else {
          int c = c0 + j < C ? c0 + j : C - 1;  // past C: not stored
          yp.set(j, (xp[q][k].get(j) - m[q]) * r[q] * w[c] + b[c]);
        }
      store_pack(y + (size_t)(row0 + q) * C, c0, C, vec, yp);
    }
    if (lane == 0) mean[row0 + q] = m[q], rstd[row0 + q] = r[q];
  }
}

// dx (+)= rstd (g - mean(g) - xhat mean(g xhat)), g = dy w. One row a warp: with three inputs a row a lane
// already has enough loads in flight (4 rows a warp made it slower on an H100: 0.59 against 0.49 ms a step
// at C = 256).
template <class T, int K>
__global__ void layernorm_backward_dx_kernel(T* dx, const T* dy, const T* x, const float* mean, const float* rstd,
                                             const float* w, int N, int C, bool accumulate_dx, bool vec) {
  constexpr int n = Pack<T>::n;
  int row = blockIdx.x * kWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  size_t base = (size_t)row * C;
  float m = mean[row], r = rstd[row], sum_g = 0.f, sum_gx = 0.f;
  Pack<T> xp[K], dyp[K], dxp[K];
#pragma unroll
  for (int k = 0; k < K; k++) {
    int c0 = (lane + 32 * k) * n;
    xp[k] = load_pack(x + base, c0, C, vec);
    dyp[k] = load_pack(dy + base, c0, C, vec);
    if (accumulate_dx) dxp[k] = load_pack((const T*)dx + base, c0, C, vec);
#pragma unroll
    for (int j = 0; j < n; j++) {
      if (c0 + j >= C) continue;
      float g = dyp[k].get(j) * w[c0 + j];
      sum_g += g;
      sum_gx += g * (xp[k].get(j) - m) * r;
    }
  }
  sum_g = warp_sum(sum_g) / C;
  sum_gx = warp_sum(sum_gx) / C;
#pragma unroll
  for (int k = 0; k < K; k++) {
    int c0 = (lane + 32 * k) * n;
    Pack<T> out;
#pragma unroll
    for (int j = 0; j < n; j++) {
      int c = c0 + j < C ? c0 + j : C - 1;  // past C: not stored
      float xhat = (xp[k].get(j) - m) * r;
      float v = r * (dyp[k].get(j) * w[c] - sum_g - xhat * sum_gx);
      out.set(j, accumulate_dx ? v + dxp[k].get(j) : v);
    }
    store_pack(dx + base, c0, C, vec, out);
  }
}

// The packs a lane holds for rows of C: the smallest K in {1, 2, 4, 8, 16} that covers the row.
template <class T>
int packs_per_lane(int C) {
  int need = (C + 32 * Pack<T>::n - 1) / (32 * Pack<T>::n);
  int K = 1;
  while (K < need) K *= 2;
  if (K > 16) throw Error("layernorm on the GPU supports rows of at most " + std::to_string(16 * 32 * Pack<T>::n) +
                          " elements, got " + std::to_string(C));
  return K;
}

// Calls f(K, R) (as std::integral_constant) for rows of C: K packs a lane, and for the forward R = 4 / K rows
// a warp while K < 4, so a lane has about 4 packs in flight (measured on an H100 at C = 256: 0.39 against
// 0.45 ms a step for R = 1). The dx kernel takes K alone.
template <class T, class F>
void with_row_shape(int C, F f) {
  using std::integral_constant;
  switch (packs_per_lane<T>(C)) {
    case 1: return f(integral_constant<int, 1>{}, integral_constant<int, 4>{});
    case 2: return f(integral_constant<int, 2>{}, integral_constant<int, 2>{});
    case 4: return f(integral_constant<int, 4>{}, integral_constant<int, 1>{});
    case 8: return f(integral_constant<int, 8>{}, integral_constant<int, 1>{});
    default: return f(integral_constant<int, 16>{}, integral_constant<int, 1>{});
  }
}

int row_blocks(int N, int R) { return (N + kWarps * R - 1) / (kWarps * R); }

// Column sums of dy * xhat and dy, one partial row [2C] per block, added in block order afterwards.
// A block covers 32 packs of columns (blockIdx.y tiles the row) with kDwdbLanes row lanes: lane y of
// block g sums rows i = g kDwdbLanes + y (mod gridDim.x kDwdbLanes) in increasing i, then the block adds
// its lanes in lane order. Packs make each row segment one wide load per thread.
constexpr int kDwdbLanes = 8;

template <class T>
__global__ void __launch_bounds__(32 * kDwdbLanes)
    layernorm_backward_dwdb_kernel(float* part, const T* dy, const T* x, const float* mean, const float* rstd, int N,
                                   int C, bool vec) {
  constexpr int n = Pack<T>::n;
  __shared__ float sums[kDwdbLanes][32 * n * 2];
  int px = threadIdx.x % 32, y = threadIdx.x / 32, c0 = (blockIdx.y * 32 + px) * n;
  float s_gx[n] = {}, s_g[n] = {};
  if (c0 < C) {
#pragma unroll 4
    for (int i = blockIdx.x * kDwdbLanes + y; i < N; i += gridDim.x * kDwdbLanes) {
      size_t base = (size_t)i * C;
      Pack<T> g = load_pack(dy + base, c0, C, vec), xv = load_pack(x + base, c0, C, vec);
      float m = mean[i], r = rstd[i];
#pragma unroll
      for (int j = 0; j < n; j++) {
        s_gx[j] += g.get(j) * (xv.get(j) - m) * r;
        s_g[j] += g.get(j);
      }
    }
  }
#pragma unroll
  for (int j = 0; j < n; j++) sums[y][px * n + j] = s_gx[j], sums[y][32 * n + px * n + j] = s_g[j];
  __syncthreads();
  for (int k = threadIdx.x; k < 32 * n * 2; k += blockDim.x) {
    int half = k / (32 * n), c = blockIdx.y * 32 * n + k % (32 * n);
    if (c >= C) continue;
    float t = 0.f;
    for (int l = 0; l < kDwdbLanes; l++) t += sums[l][k];
    part[(size_t)blockIdx.x * 2 * C + half * C + c] = t;
  }
}

}  // namespace

template <class A>
void layernorm_forward_cuda(A* y, float* mean, float* rstd, const A* x, const float* w, const float* b, int N, int C,
                            cudaStream_t stream) {
  if (N == 0) return;
  bool vec = packable(y, C) && packable(x, C);
  with_row_shape<A>(C, [&](auto K, auto R) {
    layernorm_forward_kernel<A, K.value, R.value><<<row_blocks(N, R.value), kThreads, 0, stream>>>(y, mean, rstd, x, w,
                                                                                                  b, N, C, vec);
  });
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

size_t layernorm_backward_cuda_partials(int N, int C) { return (size_t)sum_blocks(N) * 2 * C; }

template <class A>
void layernorm_backward_cuda(A* dx, float* dw, float* db, const A* dy, const A* x, const float* mean,
                             const float* rstd, const float* w, int N, int C, bool accumulate_dx, float* partials,
                             cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  bool vec = packable(dx, C) && packable(dy, C) && packable(x, C);
  with_row_shape<A>(C, [&](auto K, auto) {
    layernorm_backward_dx_kernel<A, K.value><<<row_blocks(N, 1), kThreads, 0, stream>>>(dx, dy, x, mean, rstd, w, N,
                                                                                       C, accumulate_dx, vec);
  });
  BYTELM_CUDA_CHECK(cudaGetLastError());
  int G = sum_blocks(N);
  unsigned tiles = (C + 32 * Pack<A>::n - 1) / (32 * Pack<A>::n);
  layernorm_backward_dwdb_kernel<<<dim3(G, tiles), 32 * kDwdbLanes, 0, stream>>>(partials, dy, x, mean, rstd, N, C,
                                                                                 packable(dy, C) && packable(x, C));
  BYTELM_CUDA_CHECK(cudaGetLastError());
  add_partial_sums(dw, partials, G, C, 2 * C, stream);
  add_partial_sums(db, partials + C, G, C, 2 * C, stream);
}

#define BYTELM_INSTANTIATE(A)                                                                                    \
  template void layernorm_forward_cuda<A>(A*, float*, float*, const A*, const float*, const float*, int, int,    \
                                          cudaStream_t);                                                         \
  template void layernorm_backward_cuda<A>(A*, float*, float*, const A*, const A*, const float*, const float*,  \
                                           const float*, int, int, bool, float*, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
