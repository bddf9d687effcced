// The MLP's activation on the GPU, elementwise over the [N, H] hidden rows in fp32.
#include "core/bf16.h"
#include "layers/elementwise.cuh"
#include "layers/mlp_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

// a = leaky_relu(h, leak)^2
template <class T>
struct LeakySquare {
  T* a;
  const T* h;
  float leak;
  __device__ void operator()(size_t i) const {
    float v = (float)h[i], r = v > 0.f ? v : leak * v;
    a[i] = (T)(r * r);
  }
};

// d = d * 2 s^2 h (da in, dh out), s = 1 or leak
template <class T>
struct LeakySquareBackward {
  T* d;
  const T* h;
  float leak;
  __device__ void operator()(size_t i) const {
    float v = (float)h[i], s = v > 0.f ? 1.f : leak;
    d[i] = (T)((float)d[i] * (2.f * s * s * v));
  }
};

}  // namespace

template <class A>
void mlp_forward_cuda(A* y, A* h, A* a, const A* x, const A* W1, const A* W2, int N, int d, int H, float leak,
                      Gemm gemm, cudaStream_t stream) {
  linear_forward_cuda(h, x, W1, N, d, H, gemm, stream);
  elementwise_cuda((size_t)N * H, LeakySquare<A>{a, h, leak}, stream);
  linear_forward_cuda(y, a, W2, N, H, d, gemm, stream);
}

template <class A>
void mlp_backward_cuda(A* dx, float* dW1, float* dW2, const A* dy, const A* x, const A* h, const A* a, const A* W1,
                       const A* W2, int N, int d, int H, float leak, A* scratch, Gemm gemm, cudaStream_t stream) {
  A* dh = scratch;  // da first, then dh in place
  linear_backward_cuda(dh, dW2, dy, a, W2, N, H, d, false, gemm, stream);
  elementwise_cuda((size_t)N * H, LeakySquareBackward<A>{dh, h, leak}, stream);
  linear_backward_cuda(dx, dW1, dh, x, W1, N, d, H, false, gemm, stream);
}

#define BYTELM_INSTANTIATE(A)                                                                                        \
  template void mlp_forward_cuda<A>(A*, A*, A*, const A*, const A*, const A*, int, int, int, float, Gemm,            \
                                    cudaStream_t);                                                                   \
  template void mlp_backward_cuda<A>(A*, float*, float*, const A*, const A*, const A*, const A*, const A*, const A*, \
                                     int, int, int, float, A*, Gemm, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
