// CUDA LayerNorm (see layernorm.h): a row group of threads a row. The backward computes dx, dw and
// db in one pass over x and dy; dw and db are reduced without atomics (per-block
// partial sums, then a fixed-order sum), so the backward is bit-reproducible. x, y, dy, dx are of the storage type A
// (float or bf16); the weights, their gradients and the row statistics are fp32.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace bytelm {

template <class A>
void layernorm_forward_cuda(A* y, float* mean, float* rstd, const A* x, const float* w, const float* b, int N, int C,
                            cudaStream_t stream);

// skip_layernorm_forward (layernorm.h): q = x + y + D z rounded to A, then out = LN(q); q may be y.
template <class A>
void skip_layernorm_forward_cuda(A* q, A* out, float* mean, float* rstd, const A* x, const A* y, const A* z,
                                 const float* D, const float* w, const float* b, int N, int C, cudaStream_t stream);

// Floats of scratch (`partials`) that layernorm_backward_cuda and skip_sum_layernorm_backward_cuda need.
size_t layernorm_backward_cuda_partials(int N, int C);

// dx (+)= d/dx, dw += sum dy*xhat, db += sum dy.
template <class A>
void layernorm_backward_cuda(A* dx, float* dw, float* db, const A* dy, const A* x, const float* mean,
                             const float* rstd, const float* w, int N, int C, bool accumulate_dx, float* partials,
                             cudaStream_t stream);

// skip_sum_layernorm_backward (layernorm.h): dx holds g on entry; dz is only read. partials as above.
template <class A>
void skip_sum_layernorm_backward_cuda(A* dx, float* dw, float* db, float* dD, const A* dz, const A* x, const A* z,
                                      const float* D, const float* mean, const float* rstd, const float* w, int N,
                                      int C, float* partials, cudaStream_t stream);

}  // namespace bytelm
