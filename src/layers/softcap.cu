#include "core/bf16.h"
#include "layers/elementwise.cuh"
#include "layers/softcap_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

template <class T>
struct Softcap {
  T* y;
  const T* x;
  float cap;
  __device__ void operator()(size_t i) const { y[i] = (T)(cap * tanhf((float)x[i] / cap)); }
};

template <class T>
struct SoftcapBackward {
  T* dx;
  const T *dy, *x;
  float cap;
  __device__ void operator()(size_t i) const {
    float t = tanhf((float)x[i] / cap);
    dx[i] = (T)((float)dy[i] * (1.f - t * t));
  }
};

}  // namespace

template <class A>
void softcap_forward_cuda(A* y, const A* x, size_t n, float cap, cudaStream_t stream) {
  elementwise_cuda(n, Softcap<A>{y, x, cap}, stream);
}

template <class A>
void softcap_backward_cuda(A* dx, const A* dy, const A* x, size_t n, float cap, cudaStream_t stream) {
  elementwise_cuda(n, SoftcapBackward<A>{dx, dy, x, cap}, stream);
}

#define BYTELM_INSTANTIATE(A)                                                       \
  template void softcap_forward_cuda<A>(A*, const A*, size_t, float, cudaStream_t); \
  template void softcap_backward_cuda<A>(A*, const A*, const A*, size_t, float, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
