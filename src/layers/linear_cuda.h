// CUDA linear map (see linear.h): cuBLAS GEMMs on device pointers with fp32
// accumulation. Activations and the weight copies the products read are of
// the storage type A (float or bf16); weight gradients are always fp32. The
// handle is bound to `stream`; nothing synchronises the host.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace bytelm {

// A cuBLAS handle and how its fp32 products run: CUBLAS_COMPUTE_32F is true
// fp32 (TF32 when the handle's math mode is CUBLAS_TF32_TENSOR_OP_MATH);
// CUBLAS_COMPUTE_32F_FAST_16BF rounds fp32 inputs to bf16 for the tensor
// cores. bf16 inputs always run as bf16 x bf16 -> fp32 accumulation.
struct Gemm {
  cublasHandle_t handle = nullptr;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
};

// Row-major C[M,N] (leading dimension ldc) = op(A) op(B) + beta C, op = transpose when trans_*;
// leading dimensions in elements. Inputs of type A, output of type C (A, or fp32 for gradients).
template <class A, class C>
void gemm_rows_cuda(bool trans_a, bool trans_b, int M, int N, int K, const A* a, int lda, const A* b, int ldb,
                    float beta, C* c, int ldc, Gemm gemm, cudaStream_t stream);

// y[N,out] = x[N,in] W[out,in]^T
template <class A>
void linear_forward_cuda(A* y, const A* x, const A* W, int N, int in, int out, Gemm gemm, cudaStream_t stream);

// dW += dy^T x (fp32);  dx = dy W (or dx += dy W when accumulate_dx). dx may be null.
template <class A>
void linear_backward_cuda(A* dx, float* dW, const A* dy, const A* x, const A* W, int N, int in, int out,
                          bool accumulate_dx, Gemm gemm, cudaStream_t stream);

}  // namespace bytelm
