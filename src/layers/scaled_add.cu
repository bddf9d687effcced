#include "core/bf16.h"
#include "layers/elementwise.cuh"
#include "layers/scaled_add_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

template <class T>
struct ScaledAdd {
  T* y;
  const T* x;
  const float* w;
  __device__ void operator()(size_t i) const { y[i] = (T)((float)y[i] + w[0] * (float)x[i]); }
};

// Fixed, so the summation order depends on n alone; enough threads (about two waves of an H100's SMs) to keep the
// memory system busy through the grid-stride loop.
constexpr int kBlocks = 1024;

// dx = w dy over a grid-stride share; partials[block] = the share's dy . x (threads, then warps, in order).
template <class T>
__global__ void scaled_add_backward_kernel(T* dx, float* partials, const T* dy, const T* x, const float* w, size_t n) {
  __shared__ float warp_sums[kThreads / 32];
  float s = 0.f, scale = w[0];
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float g = (float)dy[i];
    s += g * (float)x[i];
    dx[i] = (T)(scale * g);
  }
  s = warp_sum(s);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0.f;
    for (int j = 0; j < kThreads / 32; j++) t += warp_sums[j];
    partials[blockIdx.x] = t;
  }
}

}  // namespace

size_t scaled_add_backward_cuda_partials() { return kBlocks; }

template <class A>
void scaled_add_forward_cuda(A* y, const A* x, const float* w, size_t n, cudaStream_t stream) {
  elementwise_cuda(n, ScaledAdd<A>{y, x, w}, stream);
}

template <class A>
void scaled_add_backward_cuda(A* dx, float* dw, const A* dy, const A* x, const float* w, size_t n, float* partials,
                              cudaStream_t stream) {
  if (n == 0) return;
  scaled_add_backward_kernel<<<kBlocks, kThreads, 0, stream>>>(dx, partials, dy, x, w, n);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  add_partial_sums(dw, partials, kBlocks, 1, 1, stream);
}

#define BYTELM_INSTANTIATE(A)                                                                 \
  template void scaled_add_forward_cuda<A>(A*, const A*, const float*, size_t, cudaStream_t); \
  template void scaled_add_backward_cuda<A>(A*, float*, const A*, const A*, const float*, size_t, float*, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
