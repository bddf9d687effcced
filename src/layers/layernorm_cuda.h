// CUDA LayerNorm (see layernorm.h): one warp per row. dw and db are reduced
// without atomics (per-block partial sums, then a fixed-order sum), so the
// backward is bit-reproducible.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace bytelm {

template <class T>
void layernorm_forward_cuda(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int N, int C,
                            cudaStream_t stream);

// Floats of scratch (`partials`) that layernorm_backward_cuda needs.
size_t layernorm_backward_cuda_partials(int N, int C);

// dx (+)= d/dx, dw += sum dy*xhat, db += sum dy.
template <class T>
void layernorm_backward_cuda(T* dx, T* dw, T* db, const T* dy, const T* x, const T* mean, const T* rstd, const T* w,
                             int N, int C, bool accumulate_dx, float* partials, cudaStream_t stream);

}  // namespace bytelm
