#include "layers/cuda_common.cuh"
#include "layers/embedding_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

template <class T>
__global__ void embedding_forward_kernel(T* e, const uint8_t* x, const T* E, size_t n, int d) {
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k < n) e[k] = E[(size_t)x[k / d] * d + k % d];
}

// One block per (byte value v, tile of kCols columns), thread = column. The
// block walks the positions in order, kCols at a time: it compacts the rows
// whose byte is v (ballot + prefix counts keep them in order), then adds those
// rows. Each dE element has one owner and is summed in position order, starting
// from its old value, exactly like the CPU loop. Every block reads all of x
// (N bytes, from L2); de is read once in all.
constexpr int kCols = 128;

template <class T>
__global__ void __launch_bounds__(kCols) embedding_backward_kernel(T* dE, const T* de, const uint8_t* x, int N, int d) {
  __shared__ int rows[kCols];
  __shared__ int warp_hits[kCols / 32];
  int v = blockIdx.x, c = blockIdx.y * kCols + threadIdx.x, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float acc = c < d ? (float)dE[(size_t)v * d + c] : 0.f;
  for (int i0 = 0; i0 < N; i0 += kCols) {
    int i = i0 + threadIdx.x;
    bool hit = i < N && x[i] == v;
    unsigned mask = __ballot_sync(0xffffffffu, hit);
    if (lane == 0) warp_hits[warp] = __popc(mask);
    __syncthreads();
    int before = 0, total = 0;
#pragma unroll
    for (int j = 0; j < kCols / 32; j++) {
      before += j < warp ? warp_hits[j] : 0;
      total += warp_hits[j];
    }
    if (hit) rows[before + __popc(mask & ((1u << lane) - 1))] = i;
    __syncthreads();
    if (c < d)
      for (int k = 0; k < total; k++) acc += (float)de[(size_t)rows[k] * d + c];
    __syncthreads();  // rows[] and warp_hits[] are rewritten next round
  }
  if (c < d) dE[(size_t)v * d + c] = (T)acc;
}

}  // namespace

template <class T>
void embedding_forward_cuda(T* e, const uint8_t* x, const T* E, int N, int d, cudaStream_t stream) {
  size_t n = (size_t)N * d;
  if (n == 0) return;
  embedding_forward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(e, x, E, n, d);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void embedding_backward_cuda(T* dE, const T* de, const uint8_t* x, int N, int d, cudaStream_t stream) {
  if (N == 0 || d == 0) return;
  embedding_backward_kernel<<<dim3(256, (d + kCols - 1) / kCols), kCols, 0, stream>>>(dE, de, x, N, d);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template void embedding_forward_cuda<float>(float*, const uint8_t*, const float*, int, int, cudaStream_t);
template void embedding_backward_cuda<float>(float*, const float*, const uint8_t*, int, int, cudaStream_t);

}  // namespace bytelm
