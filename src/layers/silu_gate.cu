#include "core/bf16.h"
#include "layers/activations.cuh"
#include "layers/elementwise.cuh"
#include "layers/silu_gate_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

template <class T>
struct SiluGate {
  T* y;
  const T *v, *z;
  __device__ void operator()(size_t i) const { y[i] = (T)((float)v[i] * silu((float)z[i])); }
};

// reads every input before writing, so dv or dz may share memory with dy element for element
template <class T>
struct SiluGateBackward {
  T *dv, *dz;
  const T *dy, *v, *z;
  __device__ void operator()(size_t i) const {
    float g = (float)dy[i], zi = (float)z[i], vi = (float)v[i];
    dv[i] = (T)(g * silu(zi));
    dz[i] = (T)(g * vi * silu_grad(zi));
  }
};

}  // namespace

template <class A>
void silu_gate_forward_cuda(A* y, const A* v, const A* z, size_t n, cudaStream_t stream) {
  elementwise_cuda(n, SiluGate<A>{y, v, z}, stream);
}

template <class A>
void silu_gate_backward_cuda(A* dv, A* dz, const A* dy, const A* v, const A* z, size_t n, cudaStream_t stream) {
  elementwise_cuda(n, SiluGateBackward<A>{dv, dz, dy, v, z}, stream);
}

#define BYTELM_INSTANTIATE(A)                                                            \
  template void silu_gate_forward_cuda<A>(A*, const A*, const A*, size_t, cudaStream_t); \
  template void silu_gate_backward_cuda<A>(A*, A*, const A*, const A*, const A*, size_t, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
