#include "layers/cuda_common.cuh"
#include "layers/layernorm_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

constexpr int kRowsPerBlock = kThreads / 32;  // forward: one warp per row
constexpr int kBwdWarps = 4;                  // backward: warps per block, each with its own dw/db sums
constexpr int kBwdMaxBlocks = 512;            // fixed by N alone, so the summation order is too

int backward_blocks(int N) { return N < kBwdWarps * kBwdMaxBlocks ? (N + kBwdWarps - 1) / kBwdWarps : kBwdMaxBlocks; }

template <class T>
__global__ void layernorm_forward_kernel(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int N, int C) {
  int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const T* xi = x + (size_t)row * C;
  float s = 0.f;
  for (int c = lane; c < C; c += 32) s += (float)xi[c];
  float m = warp_sum(s) / C;
  float v = 0.f;  // two passes (the row is in L1 by now): no cancellation from E[x^2] - m^2
  for (int c = lane; c < C; c += 32) {
    float xc = (float)xi[c] - m;
    v += xc * xc;
  }
  float r = 1.f / sqrtf(warp_sum(v) / C + 1e-5f);
  T* yi = y + (size_t)row * C;
  for (int c = lane; c < C; c += 32) yi[c] = (T)(((float)xi[c] - m) * r * (float)w[c] + (float)b[c]);
  if (lane == 0) mean[row] = (T)m, rstd[row] = (T)r;
}

// Warps stride over rows. Each warp sums dy*xhat and dy for its rows in its own
// shared-memory row [2C] (lane-owned columns: no races), the block adds its
// warps' sums in warp order and writes one partial row per block.
template <class T>
__global__ void __launch_bounds__(kBwdWarps * 32)
    layernorm_backward_kernel(T* dx, float* part, const T* dy, const T* x, const T* mean, const T* rstd, const T* w,
                              int N, int C, bool accumulate_dx) {
  extern __shared__ float sums[];  // [kBwdWarps][2C]
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* mine = sums + (size_t)warp * 2 * C;
  for (int c = lane; c < C; c += 32) mine[c] = mine[C + c] = 0.f;  // only this lane touches these
  for (int i = blockIdx.x * kBwdWarps + warp; i < N; i += gridDim.x * kBwdWarps) {
    const T* xi = x + (size_t)i * C;
    const T* dyi = dy + (size_t)i * C;
    float m = (float)mean[i], r = (float)rstd[i];
    float sum_g = 0.f, sum_gx = 0.f;
    for (int c = lane; c < C; c += 32) {
      float xhat = ((float)xi[c] - m) * r, dyc = (float)dyi[c], g = dyc * (float)w[c];
      sum_g += g;
      sum_gx += g * xhat;
      mine[c] += dyc * xhat;
      mine[C + c] += dyc;
    }
    sum_g = warp_sum(sum_g) / C;
    sum_gx = warp_sum(sum_gx) / C;
    T* dxi = dx + (size_t)i * C;
    for (int c = lane; c < C; c += 32) {
      float xhat = ((float)xi[c] - m) * r;
      float v = r * ((float)dyi[c] * (float)w[c] - sum_g - xhat * sum_gx);
      dxi[c] = (T)(accumulate_dx ? (float)dxi[c] + v : v);
    }
  }
  __syncthreads();
  for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) {
    float s = 0.f;
    for (int j = 0; j < kBwdWarps; j++) s += sums[(size_t)j * 2 * C + c];
    part[(size_t)blockIdx.x * 2 * C + c] = s;
  }
}

}  // namespace

template <class T>
void layernorm_forward_cuda(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int N, int C,
                            cudaStream_t stream) {
  if (N == 0) return;
  layernorm_forward_kernel<<<(N + kRowsPerBlock - 1) / kRowsPerBlock, kThreads, 0, stream>>>(y, mean, rstd, x, w, b,
                                                                                             N, C);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

size_t layernorm_backward_cuda_partials(int N, int C) { return (size_t)backward_blocks(N) * 2 * C; }

template <class T>
void layernorm_backward_cuda(T* dx, T* dw, T* db, const T* dy, const T* x, const T* mean, const T* rstd, const T* w,
                             int N, int C, bool accumulate_dx, float* partials, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  int G = backward_blocks(N);
  size_t smem = sizeof(float) * kBwdWarps * 2 * C;
  if (smem > 48 * 1024)  // above the default limit a kernel must opt in
    BYTELM_CUDA_CHECK(
        cudaFuncSetAttribute(layernorm_backward_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  layernorm_backward_kernel<<<G, kBwdWarps * 32, smem, stream>>>(dx, partials, dy, x, mean, rstd, w, N, C,
                                                                  accumulate_dx);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  add_partial_sums(dw, partials, G, C, 2 * C, stream);
  add_partial_sums(db, partials + C, G, C, 2 * C, stream);
}

template void layernorm_forward_cuda<float>(float*, float*, float*, const float*, const float*, const float*, int, int,
                                            cudaStream_t);
template void layernorm_backward_cuda<float>(float*, float*, float*, const float*, const float*, const float*,
                                             const float*, const float*, int, int, bool, float*, cudaStream_t);

}  // namespace bytelm
