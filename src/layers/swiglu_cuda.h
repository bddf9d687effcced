// CUDA SwiGLU MLP (see swiglu.h): two cuBLAS GEMMs around a fused elementwise kernel.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "layers/linear_cuda.h"

namespace bytelm {

// g [N, 2H] and m [N, H] are kept for the backward.
template <class T>
void swiglu_forward_cuda(T* y, T* g, T* m, const T* x, const T* W12, const T* W3, int N, int d, int H,
                         Gemm gemm, cudaStream_t stream);

// dx = d/dx (overwrites), dW12 and dW3 accumulate. scratch: [N*3H].
template <class T>
void swiglu_backward_cuda(T* dx, T* dW12, T* dW3, const T* dy, const T* x, const T* g, const T* m, const T* W12,
                          const T* W3, int N, int d, int H, T* scratch, Gemm gemm, cudaStream_t stream);

}  // namespace bytelm
