// CUDA SmearGate (see smear.h). x, y, prev, dx, dy are of the storage type A (float or bf16); the gates [B, T],
// w [k], lambda [1] and their gradients fp32. k (the gate's width) must be below 32. dw and dlambda are summed
// without atomics (per-block partial sums over fixed row ranges, then those in block order): bit-reproducible.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace bytelm {

template <class A>
void smear_forward_cuda(A* y, float* gate, const A* x, const float* w, const float* lambda, int B, int T_, int d, int k,
                        const A* prev, cudaStream_t stream);

// Floats of scratch (`partials`) that smear_backward_cuda needs.
size_t smear_backward_cuda_partials(int B, int T_, int k);

// From the start of the sequence: dx overwritten, dw [k] and dlambda [1] accumulate.
template <class A>
void smear_backward_cuda(A* dx, float* dw, float* dlambda, const A* dy, const A* x, const float* gate, const float* w,
                         const float* lambda, int B, int T_, int d, int k, float* partials, cudaStream_t stream);

}  // namespace bytelm
