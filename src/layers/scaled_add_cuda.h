// CUDA y += w x for a learned scalar w (see scaled_add.h): the U-Net skips. x, y, dx, dy are of the storage type
// A (float or bf16); w and dw fp32 (device). The backward's dw is summed without atomics (a fixed grid of
// per-block partial sums, then those in block order), so it is bit-reproducible. Nothing synchronises the host.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace bytelm {

template <class A>
void scaled_add_forward_cuda(A* y, const A* x, const float* w, size_t n, cudaStream_t stream);

// Floats of scratch (`partials`) that scaled_add_backward_cuda needs.
size_t scaled_add_backward_cuda_partials();

// dx = w dy (overwrites); dw[0] += dy . x.
template <class A>
void scaled_add_backward_cuda(A* dx, float* dw, const A* dy, const A* x, const float* w, size_t n, float* partials,
                              cudaStream_t stream);

}  // namespace bytelm
