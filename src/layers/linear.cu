// Row-major GEMMs through column-major cuBLAS: a row-major [R, C] matrix is the
// column-major [C, R] matrix (its transpose) with leading dimension C, so each
// product is computed transposed: (A B)^T = B^T A^T with the operands swapped.
#include "core/bf16.h"
#include "core/cuda_check.h"
#include "layers/linear_cuda.h"

namespace bytelm {

namespace {

template <class T>
constexpr cudaDataType_t cuda_type();
template <>
constexpr cudaDataType_t cuda_type<float>() {
  return CUDA_R_32F;
}
template <>
constexpr cudaDataType_t cuda_type<bf16>() {
  return CUDA_R_16BF;
}

// Column-major C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C, fp32 scalars and accumulation.
template <class A, class C>
void gemm_cm(Gemm gemm, cudaStream_t stream, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
             const A* a, int lda, const A* b, int ldb, float beta, C* c, int ldc) {
  const float alpha = 1.f;
  // bf16 operands: plain fp32 compute is the bf16 tensor-core path (FAST_16BF is for fp32 operands)
  cublasComputeType_t compute = cuda_type<A>() == CUDA_R_16BF ? CUBLAS_COMPUTE_32F : gemm.compute;
  BYTELM_CUBLAS_CHECK(cublasSetStream(gemm.handle, stream));
  BYTELM_CUBLAS_CHECK(cublasGemmEx(gemm.handle, op_a, op_b, m, n, k, &alpha, a, cuda_type<A>(), lda, b,
                                   cuda_type<A>(), ldb, &beta, c, cuda_type<C>(), ldc, compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

template <class A, class C>
void gemm_rows_cuda(bool trans_a, bool trans_b, int M, int N, int K, const A* a, int lda, const A* b, int ldb,
                    float beta, C* c, int ldc, Gemm gemm, cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  // C^T[N,M] = op(B)^T op(A)^T in column-major, where a row-major operand is its own transpose.
  gemm_cm(gemm, stream, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, b, ldb, a,
          lda, beta, c, ldc);
}

template <class A>
void linear_forward_cuda(A* y, const A* x, const A* W, int N, int in, int out, Gemm gemm, cudaStream_t stream) {
  if (N == 0 || out == 0) return;
  // y^T[out,N] = W[out,in] x^T[in,N]; W is stored as column-major W^T[in,out], hence op T.
  gemm_cm(gemm, stream, CUBLAS_OP_T, CUBLAS_OP_N, out, N, in, W, in, x, in, 0.f, y, out);
}

template <class A>
void linear_backward_cuda(A* dx, float* dW, const A* dy, const A* x, const A* W, int N, int in, int out,
                          bool accumulate_dx, Gemm gemm, cudaStream_t stream) {
  if (N == 0 || in == 0 || out == 0) return;
  // dW^T[in,out] += x^T[in,N] dy[N,out]; dy is stored as column-major dy^T[out,N], hence op T.
  gemm_cm(gemm, stream, CUBLAS_OP_N, CUBLAS_OP_T, in, out, N, x, in, dy, out, 1.f, dW, in);
  // dx^T[in,N] (+)= W^T[in,out] dy^T[out,N]
  if (dx) gemm_cm(gemm, stream, CUBLAS_OP_N, CUBLAS_OP_N, in, N, out, W, in, dy, out, accumulate_dx ? 1.f : 0.f, dx, in);
}

template void gemm_rows_cuda<float, float>(bool, bool, int, int, int, const float*, int, const float*, int, float,
                                           float*, int, Gemm, cudaStream_t);
template void gemm_rows_cuda<bf16, bf16>(bool, bool, int, int, int, const bf16*, int, const bf16*, int, float, bf16*,
                                         int, Gemm, cudaStream_t);
template void gemm_rows_cuda<bf16, float>(bool, bool, int, int, int, const bf16*, int, const bf16*, int, float,
                                          float*, int, Gemm, cudaStream_t);
#define BYTELM_INSTANTIATE(A)                                                                                    \
  template void linear_forward_cuda<A>(A*, const A*, const A*, int, int, int, Gemm, cudaStream_t);              \
  template void linear_backward_cuda<A>(A*, float*, const A*, const A*, const A*, int, int, int, bool, Gemm,     \
                                        cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
