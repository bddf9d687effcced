// CUDA logit soft-capping (see softcap.h), elementwise on the storage type A (float or bf16) in fp32.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace bytelm {

// y may alias x.
template <class A>
void softcap_forward_cuda(A* y, const A* x, size_t n, float cap, cudaStream_t stream);

// dx = dy (1 - tanh(x / cap)^2) from the uncapped x; dx may alias dy.
template <class A>
void softcap_backward_cuda(A* dx, const A* dy, const A* x, size_t n, float cap, cudaStream_t stream);

}  // namespace bytelm
