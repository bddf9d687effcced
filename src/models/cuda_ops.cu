#include "layers/cuda_common.cuh"
#include "models/cuda_ops.h"

namespace bytelm {

namespace {

template <class T>
__global__ void add_inplace_kernel(T* y, const T* x, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = (T)((float)y[i] + (float)x[i]);
}

}  // namespace

template <class T>
void add_inplace_cuda(T* y, const T* x, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_inplace_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(y, x, n);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}
template void add_inplace_cuda<float>(float*, const float*, size_t, cudaStream_t);

CudaOps::CudaOps(GemmPrecision precision) {
  if (!cuda_available()) throw Error("no usable CUDA device (this build has CUDA, the machine has no GPU): use --device cpu");
  BYTELM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  BYTELM_CUBLAS_CHECK(cublasCreate(&gemm_.handle));
  BYTELM_CUBLAS_CHECK(cublasSetStream(gemm_.handle, stream_));
  bool tf32 = precision == GemmPrecision::tf32;
  BYTELM_CUBLAS_CHECK(cublasSetMathMode(gemm_.handle, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  gemm_.compute = precision == GemmPrecision::bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
}

CudaOps::~CudaOps() {
  if (gemm_.handle) cublasDestroy(gemm_.handle);
  if (stream_) cudaStreamDestroy(stream_);
}

}  // namespace bytelm
