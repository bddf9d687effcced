#include "core/bf16.h"
#include "layers/cuda_common.cuh"
#include "models/cuda_ops.h"

namespace bytelm {

using namespace cuda;

namespace {

// A thread per pack of 16 bytes (the last one partial when n is not a multiple of the pack).
template <class T>
__global__ void add_inplace_kernel(T* y, const T* x, size_t n, bool vec) {
  constexpr int P = Pack<T>::n;
  size_t k = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * P;
  if (k >= n) return;
  int len = n - k < (size_t)P ? (int)(n - k) : P;
  Pack<T> a = load_pack(y + k, 0, len, vec && len == P), b = load_pack(x + k, 0, len, vec && len == P);
#pragma unroll
  for (int j = 0; j < P; j++) a.set(j, a.get(j) + b.get(j));
  store_pack(y + k, 0, len, vec && len == P, a);
}

template <class T>
__global__ void convert_kernel(T* dst, const float* src, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = (T)src[i];
}

template <class U>
__global__ void copy_rows_where_kernel(U* dst, const U* src, const int* flags, int B, int n, size_t total) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < total && flags[(i / n) % B]) dst[i] = src[i];
}

constexpr int kSumBlocks = 256;  // fixed: the summation order depends on n alone

__global__ void sum_blocks_kernel(float* out, const float* partials, float scale) {
  float s = cuda::warp_sum(partials[threadIdx.x] + partials[threadIdx.x + 32] + partials[threadIdx.x + 64] +
                           partials[threadIdx.x + 96] + partials[threadIdx.x + 128] + partials[threadIdx.x + 160] +
                           partials[threadIdx.x + 192] + partials[threadIdx.x + 224]);
  if (threadIdx.x == 0) *out = s * scale;
}
static_assert(kSumBlocks == 8 * 32, "sum_blocks_kernel adds 8 partials a lane");

}  // namespace

size_t sum_cuda_partials() { return kSumBlocks; }

void sum_cuda(float* out, const float* x, size_t n, float* partials, cudaStream_t stream, float scale) {
  sum_partials_kernel<false><<<kSumBlocks, kThreads, 0, stream>>>(partials, x, n);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  sum_blocks_kernel<<<1, 32, 0, stream>>>(out, partials, scale);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
void add_inplace_cuda(A* y, const A* x, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  bool vec = aligned16(y) && aligned16(x);  // one flat row: only the start's alignment matters
  add_inplace_kernel<<<cuda::blocks_for((n + cuda::Pack<A>::n - 1) / cuda::Pack<A>::n), cuda::kThreads, 0, stream>>>(
      y, x, n, vec);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class U>
void copy_rows_where_cuda(U* dst, const U* src, const int* flags, int B, int n, int groups, cudaStream_t stream) {
  size_t total = (size_t)groups * B * n;
  if (total == 0) return;
  copy_rows_where_kernel<<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(dst, src, flags, B, n, total);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
void convert_cuda(A* dst, const float* src, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  convert_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(dst, src, n);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
CudaOps<A>::CudaOps(GemmPrecision precision) {
  if (!cuda_available()) throw Error("no usable CUDA device (this build has CUDA, the machine has no GPU): use --device cpu");
  BYTELM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  BYTELM_CUBLAS_CHECK(cublasCreate(&gemm_.handle));
  BYTELM_CUBLAS_CHECK(cublasSetStream(gemm_.handle, stream_));
  loss_mean_.resize(2);
  cublas_workspace_.assign_zero(32 << 20);  // cuBLAS's own advice for Hopper
  BYTELM_CUBLAS_CHECK(cublasSetWorkspace(gemm_.handle, cublas_workspace_.data(), cublas_workspace_.size()));
  // cuBLASLt shares the workspace: both queue on stream_ only, so their kernels never overlap
  lt_ = std::make_unique<GemmLt>(cublas_workspace_.data(), cublas_workspace_.size());
  gemm_.lt = lt_.get();
  gemm_.compute = precision == GemmPrecision::bf16   ? CUBLAS_COMPUTE_32F_FAST_16BF
                  : precision == GemmPrecision::tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                     : CUBLAS_COMPUTE_32F;
}

template <class A>
CudaOps<A>::~CudaOps() {
  if (gemm_.handle) cublasDestroy(gemm_.handle);
  if (stream_) cudaStreamDestroy(stream_);
}

template void add_inplace_cuda<float>(float*, const float*, size_t, cudaStream_t);
template void add_inplace_cuda<bf16>(bf16*, const bf16*, size_t, cudaStream_t);
template void copy_rows_where_cuda<float>(float*, const float*, const int*, int, int, int, cudaStream_t);
template void copy_rows_where_cuda<bf16>(bf16*, const bf16*, const int*, int, int, int, cudaStream_t);
template void convert_cuda<float>(float*, const float*, size_t, cudaStream_t);
template void convert_cuda<bf16>(bf16*, const float*, size_t, cudaStream_t);
template class CudaOps<float>;
template class CudaOps<bf16>;

}  // namespace bytelm
