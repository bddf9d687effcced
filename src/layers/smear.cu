// SmearGate on the GPU. Forward: a block a position, threads over its channels, each thread recomputing the
// gate's k-wide dot product in the CPU's order. Backward: a warp a position, over fixed ranges of kRows
// positions a block; each warp's lanes j < k accumulate dw[j] and lane k dlambda over the warp's positions in
// order, then the block's warps are added in order into one partial row per block.
#include <algorithm>
#include <string>

#include "core/bf16.h"
#include "core/error.h"
#include "layers/activations.cuh"
#include "layers/cuda_common.cuh"
#include "layers/smear_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

constexpr int kWarps = 8, kRows = 64;  // a backward block: its warps and the positions it owns

template <class T>
__device__ inline float gate_dot(const float* w, const T* xt, int k) {
  float s = 0.f;
  for (int i = 0; i < k; i++) s += w[i] * (float)xt[i];
  return s;
}

template <class T>
__global__ void smear_forward_kernel(T* y, float* gate, const T* x, const float* w, const float* lambda, int T_, int d,
                                     int k, const T* prev) {
  size_t row = blockIdx.x;
  int b = (int)(row / T_), t = (int)(row % T_);
  const T* xt = x + row * d;
  const T* before = t > 0 ? xt - d : prev ? prev + (size_t)b * d : nullptr;
  float g = before ? sigmoid(gate_dot(w, xt, k)) : 0.f, c = lambda[0] * g;
  if (threadIdx.x == 0) gate[row] = g;
  T* yt = y + row * d;
  for (int i = threadIdx.x; i < d; i += blockDim.x) yt[i] = before ? (T)((float)xt[i] + c * (float)before[i]) : xt[i];
}

template <class T>
__global__ void __launch_bounds__(kWarps * 32)
    smear_backward_kernel(T* dx, float* partials, const T* dy, const T* x, const float* gate, const float* w,
                          const float* lambda, int N, int T_, int d, int k) {
  __shared__ float sums[kWarps][32];
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float mine = 0.f;  // lane j < k: dw[j]; lane k: dlambda
  size_t first = (size_t)blockIdx.x * kRows;
  for (size_t row = first + warp; row < first + kRows && row < (size_t)N; row += kWarps) {
    int t = (int)(row % T_);
    const T* dyt = dy + row * d;
    const T* xt = x + row * d;
    float c_next = t + 1 < T_ ? lambda[0] * gate[row + 1] : 0.f, s = 0.f;
    if (t > 0) {
      float through = 0.f;  // d(loss)/d(lambda g)
      for (int i = lane; i < d; i += 32) through += (float)dyt[i] * (float)xt[i - d];
      through = warp_sum(through);
      float g = gate[row];
      s = lambda[0] * g * (1.f - g) * through;  // d(loss)/d(w . x_t[0:k])
      if (lane < k) mine += s * (float)xt[lane];
      if (lane == k) mine += g * through;
    }
    for (int i = lane; i < d; i += 32) {
      float v = (float)dyt[i];
      if (t + 1 < T_) v += c_next * (float)dyt[d + i];
      if (i < k) v += s * w[i];
      dx[row * d + i] = (T)v;
    }
  }
  sums[warp][lane] = mine;
  __syncthreads();
  if (warp == 0 && lane <= k) {
    float total = 0.f;
    for (int j = 0; j < kWarps; j++) total += sums[j][lane];
    partials[(size_t)blockIdx.x * (k + 1) + lane] = total;
  }
}

int backward_blocks(int B, int T_) { return (int)(((size_t)B * T_ + kRows - 1) / kRows); }

}  // namespace

size_t smear_backward_cuda_partials(int B, int T_, int k) { return (size_t)backward_blocks(B, T_) * (k + 1); }

template <class A>
void smear_forward_cuda(A* y, float* gate, const A* x, const float* w, const float* lambda, int B, int T_, int d, int k,
                        const A* prev, cudaStream_t stream) {
  if (k >= 32) throw Error("smear_forward_cuda: the gate reads at most 31 channels, got " + std::to_string(k));
  size_t N = (size_t)B * T_;
  if (N == 0) return;
  int threads = std::min(kThreads, (d + 31) / 32 * 32);
  smear_forward_kernel<<<(unsigned)N, threads, 0, stream>>>(y, gate, x, w, lambda, T_, d, k, prev);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
void smear_backward_cuda(A* dx, float* dw, float* dlambda, const A* dy, const A* x, const float* gate, const float* w,
                         const float* lambda, int B, int T_, int d, int k, float* partials, cudaStream_t stream) {
  if (k >= 32) throw Error("smear_backward_cuda: the gate reads at most 31 channels, got " + std::to_string(k));
  int blocks = backward_blocks(B, T_);
  if (blocks == 0) return;
  smear_backward_kernel<<<blocks, kWarps * 32, 0, stream>>>(dx, partials, dy, x, gate, w, lambda, B * T_, T_, d, k);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  add_partial_sums<float>({{dw, k, 0}, {dlambda, 1, k}}, partials, blocks, k + 1, stream);
}

#define BYTELM_INSTANTIATE(A)                                                                                         \
  template void smear_forward_cuda<A>(A*, float*, const A*, const float*, const float*, int, int, int, int, const A*, \
                                      cudaStream_t);                                                                  \
  template void smear_backward_cuda<A>(A*, float*, float*, const A*, const A*, const float*, const float*,            \
                                       const float*, int, int, int, int, float*, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
