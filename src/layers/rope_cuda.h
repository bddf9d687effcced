// CUDA rotary position embedding (see rope.h), in place on rows of the storage type A (float or bf16), rotated in
// fp32. The angles are computed in double as the CPU's are (pos * base^(-2i/Dh), then cos and sin rounded to
// float), so fp32 storage matches the CPU to the last bit or two. Nothing synchronises the host.
#pragma once
#include <cuda_runtime.h>

#include "layers/rope.h"

namespace bytelm {

template <class A>
void rope_forward_cuda(A* x, RopeShape s, cudaStream_t stream, double base = 10000.0);

// The inverse rotation, in place on the gradient.
template <class A>
void rope_backward_cuda(A* dx, RopeShape s, cudaStream_t stream, double base = 10000.0);

}  // namespace bytelm
