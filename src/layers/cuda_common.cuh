// Device helpers shared by the layer kernels (include from .cu files only).
// Storage type T is a template parameter everywhere; arithmetic and every
// accumulation are fp32. Nothing here uses atomics: reductions have one owner
// per output and a fixed summation order, so results are bit-reproducible.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "core/cuda_check.h"

namespace bytelm::cuda {

constexpr int kThreads = 256;  // default block size of the elementwise kernels

inline unsigned blocks_for(size_t n, int threads = kThreads) { return (unsigned)((n + threads - 1) / threads); }

__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);  // every lane ends with the same sum
  return v;
}

__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// out[c] += sum over g of part[g * stride + c], g in increasing order; c < n.
template <class T>
__global__ void add_partial_sums_kernel(T* out, const float* part, int G, int n, int stride) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= n) return;
  float s = 0.f;
  for (int g = 0; g < G; g++) s += part[(size_t)g * stride + c];
  out[c] = (T)((float)out[c] + s);
}

template <class T>
void add_partial_sums(T* out, const float* part, int G, int n, int stride, cudaStream_t stream) {
  if (n <= 0) return;
  add_partial_sums_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, part, G, n, stride);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace bytelm::cuda
