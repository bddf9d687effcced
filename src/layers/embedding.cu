#include "core/bf16.h"
#include "layers/cuda_common.cuh"
#include "layers/embedding_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

// A thread per pack of a position's columns (row_packs).
template <class T>
__global__ void embedding_forward_kernel(T* e, const uint8_t* x, const float* E, int N, int d, bool vec) {
  constexpr int n = Pack<T>::n;
  int i = pack_row(), c0 = pack_column(n);
  if (i >= N || c0 >= d) return;
  const float* src = E + (size_t)x[i] * d;
  Pack<T> out;
#pragma unroll
  for (int k = 0; k < n; k++) out.set(k, c0 + k < d ? src[c0 + k] : 0.f);
  store_pack(e + (size_t)i * d, c0, d, vec, out);
}

// onehot [256, N]: row v is 1 where x[i] == v. A thread writes a 16-byte pack of a row (packs fastest across
// threads, so the writes are coalesced; an element a thread took 82 us for 67 MB at ssm-2m, 25% of bandwidth).
template <class T>
__global__ void onehot_kernel(T* onehot, const uint8_t* x, int N, bool vec) {
  constexpr int n = Pack<T>::n;
  int i0 = (blockIdx.x * blockDim.x + threadIdx.x) * n, v = blockIdx.y;
  if (i0 >= N) return;
  Pack<T> out;
#pragma unroll
  for (int j = 0; j < n; j++) out.set(j, i0 + j < N && x[i0 + j] == v ? 1.f : 0.f);
  store_pack(onehot + (size_t)v * N, i0, N, vec, out);
}

}  // namespace

template <class A>
void embedding_forward_cuda(A* e, const uint8_t* x, const float* E, int N, int d, cudaStream_t stream) {
  if (N == 0 || d == 0) return;
  RowPacks l = row_packs<A>(N, d);
  embedding_forward_kernel<<<l.grid, l.block, 0, stream>>>(e, x, E, N, d, packable(e, d));
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
void embedding_backward_cuda(float* dE, const A* de, const uint8_t* x, int N, int d, void* scratch, Gemm gemm,
                             cudaStream_t stream) {
  if (N == 0 || d == 0) return;
  A* onehot = (A*)scratch;
  size_t packs = (N + Pack<A>::n - 1) / Pack<A>::n;
  onehot_kernel<<<dim3(blocks_for(packs), 256), kThreads, 0, stream>>>(onehot, x, N, packable(onehot, N));
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
