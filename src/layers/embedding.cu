#include "core/bf16.h"
#include "layers/cuda_common.cuh"
#include "layers/embedding_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

template <class T>
__global__ void embedding_forward_kernel(T* e, const uint8_t* x, const float* E, int N, int d) {
  int i = blockIdx.x, c = blockIdx.y * blockDim.x + threadIdx.x;  // row i, column c: no 64-bit index division
  if (i < N && c < d) e[(size_t)i * d + c] = (T)E[(size_t)x[i] * d + c];
}

// onehot [256, N]: row v is 1 where x[i] == v (i fastest across threads, so the writes are coalesced).
template <class T>
__global__ void onehot_kernel(T* onehot, const uint8_t* x, int N) {
  int i = blockIdx.x * blockDim.x + threadIdx.x, v = blockIdx.y;
  if (i < N) onehot[(size_t)v * N + i] = (T)(x[i] == v ? 1.f : 0.f);
}

}  // namespace

template <class A>
void embedding_forward_cuda(A* e, const uint8_t* x, const float* E, int N, int d, cudaStream_t stream) {
  if (N == 0 || d == 0) return;
  embedding_forward_kernel<<<dim3(N, blocks_for(d)), kThreads, 0, stream>>>(e, x, E, N, d);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
void embedding_backward_cuda(float* dE, const A* de, const uint8_t* x, int N, int d, void* scratch, Gemm gemm,
                             cudaStream_t stream) {
  if (N == 0 || d == 0) return;
  A* onehot = (A*)scratch;
  onehot_kernel<<<dim3(blocks_for(N), 256), kThreads, 0, stream>>>(onehot, x, N);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  gemm_rows_cuda(false, false, 256, d, N, (const A*)onehot, N, de, d, 1.f, dE, d, gemm, stream);  // dE += onehot de
}

#define BYTELM_INSTANTIATE(A)                                                                            \
  template void embedding_forward_cuda<A>(A*, const uint8_t*, const float*, int, int, cudaStream_t);     \
  template void embedding_backward_cuda<A>(float*, const A*, const uint8_t*, int, int, void*, Gemm, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
