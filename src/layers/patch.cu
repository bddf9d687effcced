#include "layers/cuda_common.cuh"
#include "layers/patch_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

// One thread per element of p [B, Np, d]: sum the patch's P bytes in order, then divide (as the CPU).
template <class T>
__global__ void patch_mean_forward_kernel(T* p, const T* e, int T_, int P, int Np, int d, size_t n) {
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= n) return;
  size_t c = k % d, bj = k / d, b = bj / Np, j = bj % Np;
  const T* src = e + (b * T_ + j * P) * d + c;
  float s = 0.f;
  for (int r = 0; r < P; r++) s += (float)src[(size_t)r * d];
  p[k] = (T)(s / P);
}

// One thread per element of the bytes inside complete patches, [B, Np*P, d].
template <class T>
__global__ void patch_mean_backward_kernel(T* de, const T* dp, int T_, int P, int Np, int d, size_t n) {
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= n) return;
  size_t c = k % d, bt = k / d, b = bt / ((size_t)Np * P), t = bt % ((size_t)Np * P);
  size_t i = (b * T_ + t) * d + c;
  de[i] = (T)((float)de[i] + (float)dp[(b * Np + t / P) * d + c] / P);
}

template <class T>
__global__ void patch_broadcast_forward_kernel(T* out, const T* p, const T* start, const T* e, int T_, int P, int Np,
                                               int d, size_t n) {
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= n) return;
  size_t c = k % d, bt = k / d, b = bt / T_;
  int src = (int)(bt % T_ + 1) / P - 1;  // patch_source(t, P), which is host-only
  float v = src >= 0 ? (float)p[(b * Np + src) * d + c] : (float)start[c];
  out[k] = (T)(v + (float)e[k]);
}

// One thread per element of dp [B, Np, d]: patch k is read by bytes [(k+1)P - 1, (k+2)P - 1) ∩ [0, T).
template <class T>
__global__ void patch_broadcast_backward_kernel(T* dp, const T* dout, int T_, int P, int Np, int d, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  size_t c = i % d, bk = i / d, b = bk / Np;
  int k = (int)(bk % Np), t_end = (k + 2) * P - 1 < T_ ? (k + 2) * P - 1 : T_;
  float s = 0.f;
  for (int t = (k + 1) * P - 1; t < t_end; t++) s += (float)dout[(b * T_ + t) * d + c];
  dp[i] = (T)s;
}

// dstart[c] += sum over b, then t < min(P - 1, T), of dout[b, t, c]: one thread per column.
template <class T>
__global__ void patch_start_backward_kernel(T* dstart, const T* dout, int B, int T_, int P, int d) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= d) return;
  int t_end = P - 1 < T_ ? P - 1 : T_;
  float s = 0.f;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < t_end; t++) s += (float)dout[((size_t)b * T_ + t) * d + c];
  dstart[c] = (T)((float)dstart[c] + s);
}

}  // namespace

template <class T>
void patch_mean_forward_cuda(T* p, const T* e, int B, int T_, int P, int d, cudaStream_t stream) {
  int Np = patch_count(T_, P);
  size_t n = (size_t)B * Np * d;
  if (n == 0) return;
  patch_mean_forward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(p, e, T_, P, Np, d, n);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void patch_mean_backward_cuda(T* de, const T* dp, int B, int T_, int P, int d, cudaStream_t stream) {
  int Np = patch_count(T_, P);
  size_t n = (size_t)B * Np * P * d;
  if (n == 0) return;
  patch_mean_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(de, dp, T_, P, Np, d, n);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void patch_broadcast_forward_cuda(T* out, const T* p, const T* start, const T* e, int B, int T_, int P, int d,
                                  cudaStream_t stream) {
  size_t n = (size_t)B * T_ * d;
  if (n == 0) return;
  patch_broadcast_forward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, p, start, e, T_, P, patch_count(T_, P),
                                                                         d, n);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void patch_broadcast_backward_cuda(T* dp, T* dstart, T* de, const T* dout, int B, int T_, int P, int d,
                                   cudaStream_t stream) {
  size_t n = (size_t)B * T_ * d;
  if (n == 0) return;
  BYTELM_CUDA_CHECK(cudaMemcpyAsync(de, dout, sizeof(T) * n, cudaMemcpyDeviceToDevice, stream));
  int Np = patch_count(T_, P);
  size_t np = (size_t)B * Np * d;
  if (np > 0) {
    patch_broadcast_backward_kernel<<<blocks_for(np), kThreads, 0, stream>>>(dp, dout, T_, P, Np, d, np);
    BYTELM_CUDA_CHECK(cudaGetLastError());
  }
  patch_start_backward_kernel<<<blocks_for(d), kThreads, 0, stream>>>(dstart, dout, B, T_, P, d);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

#define BYTELM_INSTANTIATE(T)                                                                                  \
  template void patch_mean_forward_cuda<T>(T*, const T*, int, int, int, int, cudaStream_t);                   \
  template void patch_mean_backward_cuda<T>(T*, const T*, int, int, int, int, cudaStream_t);                  \
  template void patch_broadcast_forward_cuda<T>(T*, const T*, const T*, const T*, int, int, int, int,         \
                                                cudaStream_t);                                                \
  template void patch_broadcast_backward_cuda<T>(T*, T*, T*, const T*, int, int, int, int, cudaStream_t);
BYTELM_INSTANTIATE(float)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
