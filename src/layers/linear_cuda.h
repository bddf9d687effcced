// CUDA linear map (see linear.h): cuBLAS GEMMs on device pointers, fp32
// compute (CUBLAS_COMPUTE_32F: no TF32 unless the handle's math mode asks for it).
// The handle is bound to `stream`; nothing synchronises the host.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace bytelm {

// y[N,out] = x[N,in] W[out,in]^T
template <class T>
void linear_forward_cuda(T* y, const T* x, const T* W, int N, int in, int out, cublasHandle_t handle,
                         cudaStream_t stream);

// dW += dy^T x;  dx = dy W (or dx += dy W when accumulate_dx). dx may be null.
template <class T>
void linear_backward_cuda(T* dx, T* dW, const T* dy, const T* x, const T* W, int N, int in, int out,
                          bool accumulate_dx, cublasHandle_t handle, cudaStream_t stream);

}  // namespace bytelm
