#include "layers/cuda_common.cuh"
#include "layers/linear_cuda.h"
#include "layers/swiglu_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

// m = silu(a) * b for g = [a | b] per row; one thread per element of m.
template <class T>
__global__ void swiglu_gate_kernel(T* m, const T* g, size_t n, int H) {
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= n) return;
  size_t i = k / H, j = k % H;
  float a = (float)g[i * 2 * H + j], b = (float)g[i * 2 * H + H + j];
  m[k] = (T)(a / (1.f + expf(-a)) * b);
}

template <class T>
__global__ void swiglu_gate_backward_kernel(T* dg, const T* dm, const T* g, size_t n, int H) {
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= n) return;
  size_t i = k / H, j = k % H;
  float a = (float)g[i * 2 * H + j], b = (float)g[i * 2 * H + H + j];
  float s = 1.f / (1.f + expf(-a)), dmk = (float)dm[k];
  dg[i * 2 * H + j] = (T)(dmk * b * s * (1.f + a * (1.f - s)));  // silu'(a) = s (1 + a (1 - s))
  dg[i * 2 * H + H + j] = (T)(dmk * a * s);
}

}  // namespace

template <class T>
void swiglu_forward_cuda(T* y, T* g, T* m, const T* x, const T* W12, const T* W3, int N, int d, int H,
                         Gemm gemm, cudaStream_t stream) {
  if (N == 0) return;
  linear_forward_cuda(g, x, W12, N, d, 2 * H, gemm, stream);
  size_t n = (size_t)N * H;
  if (n > 0) {
    swiglu_gate_kernel<<<blocks_for(n), kThreads, 0, stream>>>(m, g, n, H);
    BYTELM_CUDA_CHECK(cudaGetLastError());
  }
  linear_forward_cuda(y, m, W3, N, H, d, gemm, stream);
}

template <class T>
void swiglu_backward_cuda(T* dx, T* dW12, T* dW3, const T* dy, const T* x, const T* g, const T* m, const T* W12,
                          const T* W3, int N, int d, int H, T* scratch, Gemm gemm, cudaStream_t stream) {
  if (N == 0) return;
  T* dm = scratch;                  // [N, H]
  T* dg = scratch + (size_t)N * H;  // [N, 2H]
  linear_backward_cuda(dm, dW3, dy, m, W3, N, H, d, false, gemm, stream);
  size_t n = (size_t)N * H;
  if (n > 0) {
    swiglu_gate_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(dg, dm, g, n, H);
    BYTELM_CUDA_CHECK(cudaGetLastError());
  }
  linear_backward_cuda(dx, dW12, dg, x, W12, N, d, 2 * H, false, gemm, stream);
}

template void swiglu_forward_cuda<float>(float*, float*, float*, const float*, const float*, const float*, int, int,
                                         int, Gemm, cudaStream_t);
template void swiglu_backward_cuda<float>(float*, float*, float*, const float*, const float*, const float*,
                                          const float*, const float*, const float*, int, int, int, float*,
                                          Gemm, cudaStream_t);

}  // namespace bytelm
