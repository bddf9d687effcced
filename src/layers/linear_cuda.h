// CUDA linear map (see linear.h): cuBLAS GEMMs on device pointers, fp32
// storage and accumulation. The handle is bound to `stream`; nothing
// synchronises the host.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace bytelm {

// A cuBLAS handle and how its fp32 products run: CUBLAS_COMPUTE_32F is true
// fp32 (TF32 when the handle's math mode is CUBLAS_TF32_TENSOR_OP_MATH);
// CUBLAS_COMPUTE_32F_FAST_16BF rounds the inputs to bf16 for the tensor cores
// and still accumulates in fp32.
struct Gemm {
  cublasHandle_t handle = nullptr;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
};

// Row-major C[M,N] (leading dimension ldc) = op(A) op(B) + beta C, op = transpose when trans_*;
// leading dimensions in elements. For layers whose operands are strided views.
template <class T>
void gemm_rows_cuda(bool trans_a, bool trans_b, int M, int N, int K, const T* A, int lda, const T* B, int ldb,
                    float beta, T* C, int ldc, Gemm gemm, cudaStream_t stream);

// y[N,out] = x[N,in] W[out,in]^T
template <class T>
void linear_forward_cuda(T* y, const T* x, const T* W, int N, int in, int out, Gemm gemm,
                         cudaStream_t stream);

// dW += dy^T x;  dx = dy W (or dx += dy W when accumulate_dx). dx may be null.
template <class T>
void linear_backward_cuda(T* dx, T* dW, const T* dy, const T* x, const T* W, int N, int in, int out,
                          bool accumulate_dx, Gemm gemm, cudaStream_t stream);

}  // namespace bytelm
