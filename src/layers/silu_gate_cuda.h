// CUDA SiLU gate (see silu_gate.h): y = v * silu(z), elementwise on the storage type A (float or bf16) in fp32.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace bytelm {

template <class A>
void silu_gate_forward_cuda(A* y, const A* v, const A* z, size_t n, cudaStream_t stream);

// dv and dz are overwritten.
template <class A>
void silu_gate_backward_cuda(A* dv, A* dz, const A* dy, const A* v, const A* z, size_t n, cudaStream_t stream);

}  // namespace bytelm
