// Row-major GEMMs through column-major cuBLAS: a row-major [R, C] matrix is the
// column-major [C, R] matrix (its transpose) with leading dimension C, so each
// product is computed transposed: (A B)^T = B^T A^T with the operands swapped.
#include "layers/linear_cuda.h"

#include "core/cuda_check.h"

namespace bytelm {

namespace {

template <class T>
constexpr cudaDataType_t cuda_type();
template <>
constexpr cudaDataType_t cuda_type<float>() {
  return CUDA_R_32F;
}

// Column-major C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C, fp32 compute and scalars.
template <class T>
void gemm_cm(Gemm gemm, cudaStream_t stream, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n,
             int k, const T* A, int lda, const T* B, int ldb, float beta, T* C, int ldc) {
  const float alpha = 1.f;
  BYTELM_CUBLAS_CHECK(cublasSetStream(gemm.handle, stream));
  BYTELM_CUBLAS_CHECK(cublasGemmEx(gemm.handle, op_a, op_b, m, n, k, &alpha, A, cuda_type<T>(), lda, B, cuda_type<T>(), ldb,
                                   &beta, C, cuda_type<T>(), ldc, gemm.compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

template <class T>
void gemm_rows_cuda(bool trans_a, bool trans_b, int M, int N, int K, const T* A, int lda, const T* B, int ldb,
                    float beta, T* C, int ldc, Gemm gemm, cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  // C^T[N,M] = op(B)^T op(A)^T in column-major, where a row-major operand is its own transpose.
  gemm_cm(gemm, stream, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, B, ldb, A,
          lda, beta, C, ldc);
}

template <class T>
void linear_forward_cuda(T* y, const T* x, const T* W, int N, int in, int out, Gemm gemm,
                         cudaStream_t stream) {
  if (N == 0 || out == 0) return;
  // y^T[out,N] = W[out,in] x^T[in,N]; W is stored as column-major W^T[in,out], hence op T.
  gemm_cm(gemm, stream, CUBLAS_OP_T, CUBLAS_OP_N, out, N, in, W, in, x, in, 0.f, y, out);
}

template <class T>
void linear_backward_cuda(T* dx, T* dW, const T* dy, const T* x, const T* W, int N, int in, int out,
                          bool accumulate_dx, Gemm gemm, cudaStream_t stream) {
  if (N == 0 || in == 0 || out == 0) return;
  // dW^T[in,out] += x^T[in,N] dy[N,out]; dy is stored as column-major dy^T[out,N], hence op T.
  gemm_cm(gemm, stream, CUBLAS_OP_N, CUBLAS_OP_T, in, out, N, x, in, dy, out, 1.f, dW, in);
  // dx^T[in,N] (+)= W^T[in,out] dy^T[out,N]
  if (dx && N > 0)
    gemm_cm(gemm, stream, CUBLAS_OP_N, CUBLAS_OP_N, in, N, out, W, in, dy, out, accumulate_dx ? 1.f : 0.f, dx, in);
}

template void gemm_rows_cuda<float>(bool, bool, int, int, int, const float*, int, const float*, int, float, float*,
                                    int, Gemm, cudaStream_t);
template void linear_forward_cuda<float>(float*, const float*, const float*, int, int, int, Gemm,
                                         cudaStream_t);
template void linear_backward_cuda<float>(float*, float*, const float*, const float*, const float*, int, int, int, bool,
                                          Gemm, cudaStream_t);

}  // namespace bytelm
