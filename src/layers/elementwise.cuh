// Elementwise kernels over flat arrays (include from .cu files only): elementwise_cuda(n, op, stream) runs
// op(i) for every i < n, a thread an element. Consecutive threads touch consecutive elements, so the accesses
// coalesce; each op is a small functor struct holding its pointers (fp32 arithmetic on the storage type).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "layers/cuda_common.cuh"

namespace bytelm::cuda {

template <class Op>
__global__ void elementwise_kernel(size_t n, Op op) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) op(i);
}

template <class Op>
void elementwise_cuda(size_t n, Op op, cudaStream_t stream) {
  if (n == 0) return;
  elementwise_kernel<<<blocks_for(n), kThreads, 0, stream>>>(n, op);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace bytelm::cuda
