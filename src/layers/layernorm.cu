#include "core/bf16.h"
#include "layers/cuda_common.cuh"
#include "layers/layernorm_cuda.h"

#include <string>
#include <type_traits>

#include "core/error.h"

namespace bytelm {

using namespace cuda;

namespace {

constexpr int kRowsPerBlock = kThreads / 32;  // forward and dx: one warp per row
constexpr int kSumRows = 64;                  // dw/db: about this many rows a block, up to
constexpr int kSumMaxBlocks = 1024;           // this many blocks; fixed by N alone, so is the summation order

int sum_blocks(int N) {
  int g = (N + kSumRows - 1) / kSumRows;
  return g < kSumMaxBlocks ? g : kSumMaxBlocks;
}

// Forward and dx: one warp per row, the row held in registers as K packs a lane (lane l holds
// packs l, l + 32, ...), so each row is read once and written once, all reads before any write.
template <class T, int K>
__global__ void layernorm_forward_kernel(T* y, float* mean, float* rstd, const T* x, const float* w, const float* b,
                                         int N, int C, bool vec) {
  constexpr int n = Pack<T>::n;
  int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const T* xi = x + (size_t)row * C;
  Pack<T> xp[K];
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < K; k++) {
    xp[k] = load_pack(xi, (lane + 32 * k) * n, C, vec);
#pragma unroll
    for (int j = 0; j < n; j++) s += xp[k].get(j);  // columns past C read as 0
  }
  float m = warp_sum(s) / C;
  float v = 0.f;  // two passes over the registers: no cancellation from E[x^2] - m^2
#pragma unroll
  for (int k = 0; k < K; k++)
#pragma unroll
    for (int j = 0; j < n; j++) {
      int c = (lane + 32 * k) * n + j;
      float xc = c < C ? xp[k].get(j) - m : 0.f;
      v += xc * xc;
    }
  float r = 1.f / sqrtf(warp_sum(v) / C + 1e-5f);
  T* yi = y + (size_t)row * C;
#pragma unroll
  for (int k = 0; k < K; k++) {
    int c0 = (lane + 32 * k) * n;
    Pack<T> yp;
#pragma unroll
    for (int j = 0; j < n; j++) yp.set(j, c0 + j < C ? (xp[k].get(j) - m) * r * w[c0 + j] + b[c0 + j] : 0.f);
    store_pack(yi, c0, C, vec, yp);
  }
  if (lane == 0) mean[row] = m, rstd[row] = r;
}

// dx (+)= rstd (g - mean(g) - xhat mean(g xhat)), g = dy w.
template <class T, int K>
__global__ void layernorm_backward_dx_kernel(T* dx, const T* dy, const T* x, const float* mean, const float* rstd,
                                             const float* w, int N, int C, bool accumulate_dx, bool vec) {
  constexpr int n = Pack<T>::n;
  int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  size_t base = (size_t)row * C;
  float m = mean[row], r = rstd[row];
  Pack<T> xp[K], dyp[K], dxp[K];
  float sum_g = 0.f, sum_gx = 0.f;
#pragma unroll
  for (int k = 0; k < K; k++) {
    int c0 = (lane + 32 * k) * n;
    xp[k] = load_pack(x + base, c0, C, vec);
    dyp[k] = load_pack(dy + base, c0, C, vec);
    if (accumulate_dx) dxp[k] = load_pack(dx + base, c0, C, vec);
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
      float v = 0.f;
      if (c0 + j < C) {
        float xhat = (xp[k].get(j) - m) * r;
        v = r * (dyp[k].get(j) * w[c0 + j] - sum_g - xhat * sum_gx);
        if (accumulate_dx) v += dxp[k].get(j);
      }
      out.set(j, v);
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

// Calls f(std::integral_constant<int, K>{}) for the K that rows of C need.
template <class T, class F>
void with_packs_per_lane(int C, F f) {
  switch (packs_per_lane<T>(C)) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 8: return f(std::integral_constant<int, 8>{});
    default: return f(std::integral_constant<int, 16>{});
  }
}

// Column sums of dy * xhat and dy over the rows i = blockIdx.x (mod gridDim.x): a thread per column,
// so each row is read coalesced; one partial row [2C] per block, added in block order afterwards.
template <class T>
__global__ void layernorm_backward_dwdb_kernel(float* part, const T* dy, const T* x, const float* mean,
                                               const float* rstd, int N, int C) {
  int c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float s_gx = 0.f, s_g = 0.f;
  for (int i = blockIdx.x; i < N; i += gridDim.x) {
    size_t k = (size_t)i * C + c;
    float dyc = (float)dy[k];
    s_gx += dyc * ((float)x[k] - mean[i]) * rstd[i];
    s_g += dyc;
  }
  part[(size_t)blockIdx.x * 2 * C + c] = s_gx;
  part[(size_t)blockIdx.x * 2 * C + C + c] = s_g;
}

}  // namespace

template <class A>
void layernorm_forward_cuda(A* y, float* mean, float* rstd, const A* x, const float* w, const float* b, int N, int C,
                            cudaStream_t stream) {
  if (N == 0) return;
  bool vec = packable(y, C) && packable(x, C);
  with_packs_per_lane<A>(C, [&](auto K) {
    layernorm_forward_kernel<A, K.value><<<(N + kRowsPerBlock - 1) / kRowsPerBlock, kThreads, 0, stream>>>(
        y, mean, rstd, x, w, b, N, C, vec);
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
  with_packs_per_lane<A>(C, [&](auto K) {
    layernorm_backward_dx_kernel<A, K.value><<<(N + kRowsPerBlock - 1) / kRowsPerBlock, kThreads, 0, stream>>>(
        dx, dy, x, mean, rstd, w, N, C, accumulate_dx, vec);
  });
  BYTELM_CUDA_CHECK(cudaGetLastError());
  int G = sum_blocks(N);
  layernorm_backward_dwdb_kernel<<<dim3(G, blocks_for(C)), kThreads, 0, stream>>>(partials, dy, x, mean, rstd, N, C);
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
