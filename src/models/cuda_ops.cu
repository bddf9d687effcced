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

CudaOps::CudaOps(bool tf32) {
  if (!cuda_available()) throw Error("no usable CUDA device (this build has CUDA, the machine has no GPU): use --device cpu");
  BYTELM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  BYTELM_CUBLAS_CHECK(cublasCreate(&cublas_));
  BYTELM_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  BYTELM_CUBLAS_CHECK(cublasSetMathMode(cublas_, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

CudaOps::~CudaOps() {
  if (cublas_) cublasDestroy(cublas_);
  if (stream_) cudaStreamDestroy(stream_);
}

}  // namespace bytelm
