#include "core/bf16.h"
#include "layers/cross_entropy_cuda.h"
#include "layers/cuda_common.cuh"

namespace bytelm {

using namespace cuda;

namespace {

constexpr int kRowsPerBlock = kThreads / 32;

// Each lane holds 8 logits (lane + 32 k) in registers; the whole row, and
// logits[y], are read before any write, so dlogits may alias logits.
template <class T>
__global__ void cross_entropy_kernel(float* loss, T* dlogits, const T* logits, const uint8_t* y, int N, float scale) {
  int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const T* li = logits + (size_t)row * 256;
  int target = y[row];
  float l[8], mx = -INFINITY;
#pragma unroll
  for (int k = 0; k < 8; k++) mx = fmaxf(mx, l[k] = (float)li[lane + 32 * k]);
  float l_target = (float)li[target];
  mx = warp_max(mx);
  float sum = 0.f;
#pragma unroll
  for (int k = 0; k < 8; k++) sum += expf(l[k] - mx);
  float lse = mx + logf(warp_sum(sum));
  __syncwarp();  // every lane has read its row before any lane writes it
  if (lane == 0) loss[row] = lse - l_target;
  if (!dlogits) return;
  T* di = dlogits + (size_t)row * 256;
#pragma unroll
  for (int k = 0; k < 8; k++) {
    float v = expf(l[k] - lse) * scale;
    di[lane + 32 * k] = (T)(lane + 32 * k == target ? v - scale : v);
  }
}

}  // namespace

template <class A>
void cross_entropy_forward_backward_cuda(float* loss, A* dlogits, const A* logits, const uint8_t* y, int N,
                                         float scale, cudaStream_t stream) {
  if (N == 0) return;
  cross_entropy_kernel<<<(N + kRowsPerBlock - 1) / kRowsPerBlock, kThreads, 0, stream>>>(loss, dlogits, logits, y, N,
                                                                                          scale);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template void cross_entropy_forward_backward_cuda<float>(float*, float*, const float*, const uint8_t*, int, float,
                                                         cudaStream_t);
template void cross_entropy_forward_backward_cuda<bf16>(float*, bf16*, const bf16*, const uint8_t*, int, float,
                                                        cudaStream_t);

}  // namespace bytelm
