// Depthwise causal convolution + SiLU on the GPU. A thread per (row, channel) in the forward and for dx
// (which recomputes the K pre-activations it needs: K^2 multiply-adds, cheaper than storing them); dw and
// dbias in a row-striding kernel whose per-block partial sums are added in block order.
#include "core/bf16.h"
#include "core/error.h"
#include "layers/activations.cuh"
#include "layers/causal_conv_cuda.h"
#include "layers/cuda_common.cuh"

namespace bytelm {

using namespace cuda;

namespace {

// bias[c] + sum_k w[c, k] x[t - (K-1) + k, c] for one sequence xb [T, C], the CPU's order; inputs before t = 0
// from state sb [K-1, C] (null: zero).
template <class T>
__device__ inline float pre_activation(const T* xb, const float* sb, const float* w, const float* bias, int t, int c,
                                       int C, int K) {
  float pre = bias[c];
  for (int k = 0; k < K; k++) {
    int s = t - (K - 1) + k;
    if (s < 0 && !sb) continue;
    float in = s >= 0 ? (float)xb[(size_t)s * C + c] : sb[(size_t)(K - 1 + s) * C + c];
    pre += w[(size_t)c * K + k] * in;
  }
  return pre;
}

template <class T>
__global__ void conv_forward_kernel(T* y, const T* x, const float* w, const float* bias, int T_, int C, int K,
                                    const float* state) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  int b = blockIdx.y;
  if (i >= (size_t)T_ * C) return;
  int t = (int)(i / C), c = (int)(i % C);
  const T* xb = x + (size_t)b * T_ * C;
  const float* sb = state ? state + (size_t)b * (K - 1) * C : nullptr;
  y[(size_t)b * T_ * C + i] = (T)silu(pre_activation(xb, sb, w, bias, t, c, C, K));
}

// state [B, K-1, C] = the last K-1 inputs of each sequence (of x, or of the old state where T < K-1). One
// thread owns a channel of a sequence and reads all it needs before writing.
template <class T>
__global__ void conv_state_kernel(float* state, const T* x, int B, int T_, int C, int K) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)B * C) return;
  int b = (int)(i / C), c = (int)(i % C);
  float* sb = state + (size_t)b * (K - 1) * C;
  float last[kCausalConvMaxWidth];
#pragma unroll
  for (int j = 0; j < kCausalConvMaxWidth - 1; j++) {
    if (j >= K - 1) break;
    int s = T_ - (K - 1) + j;
    last[j] = s >= 0 ? (float)x[((size_t)b * T_ + s) * C + c] : sb[(size_t)(K - 1 + s) * C + c];
  }
#pragma unroll
  for (int j = 0; j < kCausalConvMaxWidth - 1; j++) {
    if (j >= K - 1) break;
    sb[(size_t)j * C + c] = last[j];
  }
}

// dx[p, c] = sum over the K outputs t = p .. p+K-1 that read input p of g[t, c] w[c, K-1 - (t - p)], t in
// increasing order as the CPU adds them; g = dy silu'(pre).
template <class T>
__global__ void conv_backward_dx_kernel(T* dx, const T* dy, const T* x, const float* w, const float* bias, int T_,
                                        int C, int K) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  int b = blockIdx.y;
  if (i >= (size_t)T_ * C) return;
  int p = (int)(i / C), c = (int)(i % C);
  const T* xb = x + (size_t)b * T_ * C;
  const T* dyb = dy + (size_t)b * T_ * C;
  float acc = 0.f;
  for (int k = K - 1; k >= 0; k--) {
    int t = p + (K - 1) - k;
    if (t >= T_) break;
    float g = (float)dyb[(size_t)t * C + c] * silu_grad(pre_activation(xb, (const float*)nullptr, w, bias, t, c, C, K));
    acc += g * w[(size_t)c * K + k];
  }
  dx[(size_t)b * T_ * C + i] = (T)acc;
}

// Per-block partial sums of dw [C, K] and dbias [C] at part + blockIdx.y * (K+1) C: a block owns 32 channels
// and a fixed set of rows (kRowLanes row lanes striding by kRowLanes * gridDim.y), each lane summing its rows in
// order, then the lanes in lane order.
constexpr int kRowLanes = 8;
constexpr int kMaxBlocks = 512;

int dw_blocks(size_t rows) {
  size_t g = (rows + 127) / 128;
  return g < 1 ? 1 : g > (size_t)kMaxBlocks ? kMaxBlocks : (int)g;
}

template <class T>
__global__ void __launch_bounds__(32 * kRowLanes)
    conv_backward_dw_kernel(float* part, const T* dy, const T* x, const float* w, const float* bias, int rows, int T_,
                            int C, int K) {
  __shared__ float sums[kRowLanes][kCausalConvMaxWidth + 1][32];
  int lane = threadIdx.x % 32, r = threadIdx.x / 32, c = blockIdx.x * 32 + lane;
  float acc[kCausalConvMaxWidth + 1] = {};  // dw taps 0..K-1, then dbias at kCausalConvMaxWidth
  if (c < C) {
    for (int i = blockIdx.y * kRowLanes + r; i < rows; i += gridDim.y * kRowLanes) {
      int t = i % T_;
      const T* xb = x + (size_t)(i - t) * C;
      float g = (float)dy[(size_t)i * C + c] * silu_grad(pre_activation(xb, (const float*)nullptr, w, bias, t, c, C, K));
      acc[kCausalConvMaxWidth] += g;
#pragma unroll
      for (int k = 0; k < kCausalConvMaxWidth; k++) {
        int s = t - (K - 1) + k;
        if (k < K && s >= 0) acc[k] += g * (float)xb[(size_t)s * C + c];
      }
    }
  }
#pragma unroll
  for (int k = 0; k <= kCausalConvMaxWidth; k++) sums[r][k][lane] = acc[k];
  __syncthreads();
  if (r == 0 && c < C) {
    float* out = part + (size_t)blockIdx.y * (K + 1) * C;
    for (int k = 0; k < K; k++) {
      float s = 0.f;
      for (int j = 0; j < kRowLanes; j++) s += sums[j][k][lane];
      out[(size_t)c * K + k] = s;
    }
    float s = 0.f;
    for (int j = 0; j < kRowLanes; j++) s += sums[j][kCausalConvMaxWidth][lane];
    out[(size_t)K * C + c] = s;
  }
}

void check_width(int K) {
  if (K < 1 || K > kCausalConvMaxWidth)
    throw Error("causal conv on the GPU takes widths 1.." + std::to_string(kCausalConvMaxWidth) + ", got " +
                std::to_string(K));
}

}  // namespace

template <class A>
void causal_conv_forward_cuda(A* y, const A* x, const float* w, const float* bias, int B, int T_, int C, int K,
                              float* state, cudaStream_t stream) {
  check_width(K);
  if (B == 0 || T_ == 0 || C == 0) return;
  conv_forward_kernel<<<dim3(blocks_for((size_t)T_ * C), B), kThreads, 0, stream>>>(y, x, w, bias, T_, C, K, state);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  if (state && K > 1) {  // after the forward has read the old state
    conv_state_kernel<<<blocks_for((size_t)B * C), kThreads, 0, stream>>>(state, x, B, T_, C, K);
    BYTELM_CUDA_CHECK(cudaGetLastError());
  }
}

size_t causal_conv_backward_cuda_partials(int B, int T_, int C, int K) {
  return (size_t)dw_blocks((size_t)B * T_) * (K + 1) * C;
}

template <class A>
void causal_conv_backward_cuda(A* dx, float* dw, float* dbias, const A* dy, const A* x, const float* w,
                               const float* bias, int B, int T_, int C, int K, float* partials, cudaStream_t stream) {
  check_width(K);
  if (B == 0 || T_ == 0 || C == 0) return;
  conv_backward_dx_kernel<<<dim3(blocks_for((size_t)T_ * C), B), kThreads, 0, stream>>>(dx, dy, x, w, bias, T_, C, K);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  int rows = B * T_, G = dw_blocks(rows);
  conv_backward_dw_kernel<<<dim3((C + 31) / 32, G), 32 * kRowLanes, 0, stream>>>(partials, dy, x, w, bias, rows, T_, C,
                                                                                  K);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  add_partial_sums(dw, partials, G, C * K, (K + 1) * C, stream);
  add_partial_sums(dbias, partials + (size_t)C * K, G, C, (K + 1) * C, stream);
}

#define BYTELM_INSTANTIATE(A)                                                                                     \
  template void causal_conv_forward_cuda<A>(A*, const A*, const float*, const float*, int, int, int, int, float*, \
                                            cudaStream_t);                                                        \
  template void causal_conv_backward_cuda<A>(A*, float*, float*, const A*, const A*, const float*, const float*,  \
                                             int, int, int, int, float*, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
