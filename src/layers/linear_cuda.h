// CUDA linear map (see linear.h): cuBLAS GEMMs on device pointers with fp32
// accumulation. Activations and the weight copies the products read are of
// the storage type A (float or bf16); weight gradients are always fp32. The
// handle is bound to `stream`; nothing synchronises the host.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>

namespace bytelm {

// cuBLASLt, for the products whose output is not their accumulator (D = C + A B, D != C; see gemm_rows_add_cuda),
// and, while tuning, for every bf16 product of a Gemm that carries it: its handle, the fixed workspace its kernels
// may use (nothing allocates while a step is captured into a graph), and per shape a plan, the descriptors and the
// algorithm, found on first use. Bound to no stream: every call names its own.
class GemmLt {
 public:
  GemmLt(void* workspace, size_t bytes);
  ~GemmLt();
  // Off (the default), the bf16 products run through cublasGemmEx and the C != D ones take the heuristic's first
  // algorithm: the same kernels in every run. On, every bf16 product runs here, and shapes first met outside a
  // graph capture take the fastest of the heuristic's first eight, each timed on the product's own operands (into
  // a scratch output where the product accumulates in place; a fraction of a second a shape, once): faster
  // kernels where the heuristic's first is not the best, which another run may choose differently (results then
  // differ in the last bits).
  void tune(bool on);
  bool tuning() const;
  GemmLt(const GemmLt&) = delete;
  GemmLt& operator=(const GemmLt&) = delete;
  struct Impl;  // linear.cu
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// A cuBLAS handle and how its fp32 products run: CUBLAS_COMPUTE_32F is true
// fp32, CUBLAS_COMPUTE_32F_FAST_TF32 TF32 (the compute type, not the handle's
// math mode, which cuBLASLt does not read); CUBLAS_COMPUTE_32F_FAST_16BF rounds
// fp32 inputs to bf16 for the tensor cores. bf16 inputs always run as bf16 x bf16 -> fp32 accumulation. lt: for
// gemm_rows_add_cuda, and while it tunes, every bf16 product.
struct Gemm {
  cublasHandle_t handle = nullptr;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  GemmLt* lt = nullptr;
};

// Row-major C[M,N] (leading dimension ldc) = op(A) op(B) + beta C, op = transpose when trans_*;
// leading dimensions in elements. Inputs of type A, output of type C (A, or fp32 for gradients).
template <class A, class C>
void gemm_rows_cuda(bool trans_a, bool trans_b, int M, int N, int K, const A* a, int lda, const A* b, int ldb,
                    float beta, C* c, int ldc, Gemm gemm, cudaStream_t stream);

// Row-major D[M,N] (leading dimension ldd) = C + op(A) op(B), C [M,N] (ldc) another buffer (or D itself): the
// sum in the product's epilogue, one pass over C and D where a product and then an add make three. All of type A,
// fp32 accumulation; gemm.lt must be set.
template <class A>
void gemm_rows_add_cuda(bool trans_a, bool trans_b, int M, int N, int K, const A* a, int lda, const A* b, int ldb,
                        const A* c, int ldc, A* d, int ldd, Gemm gemm, cudaStream_t stream);

// y[N,out] = x[N,in] W[out,in]^T
template <class A>
void linear_forward_cuda(A* y, const A* x, const A* W, int N, int in, int out, Gemm gemm, cudaStream_t stream);

// dW += dy^T x (fp32);  dx = dy W (or dx += dy W when accumulate_dx). dx may be null.
template <class A>
void linear_backward_cuda(A* dx, float* dW, const A* dy, const A* x, const A* W, int N, int in, int out,
                          bool accumulate_dx, Gemm gemm, cudaStream_t stream);

}  // namespace bytelm
