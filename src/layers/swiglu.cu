#include "layers/cuda_common.cuh"
#include "layers/swiglu_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

// m = silu(a) * b for g = [a | b] per row (row stride 2S, b at column S); m is zero past H.
template <class T>
__global__ void swiglu_gate_kernel(T* m, const T* g, size_t n, int H, int S) {
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= n) return;
  size_t i = k / S, j = k % S;
  if (j >= (size_t)H) {
    m[k] = (T)0.f;
    return;
  }
  float a = (float)g[i * 2 * S + j], b = (float)g[i * 2 * S + S + j];
  m[k] = (T)(a / (1.f + expf(-a)) * b);
}

template <class T>
__global__ void swiglu_gate_backward_kernel(T* dg, const T* dm, const T* g, size_t n, int H, int S) {
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= n) return;
  size_t i = k / S, j = k % S;
  if (j >= (size_t)H) {  // padding: read by the products, so it must be zero
    dg[i * 2 * S + j] = (T)0.f;
    dg[i * 2 * S + S + j] = (T)0.f;
    return;
  }
  float a = (float)g[i * 2 * S + j], b = (float)g[i * 2 * S + S + j];
  float s = 1.f / (1.f + expf(-a)), dmk = (float)dm[k];
  dg[i * 2 * S + j] = (T)(dmk * b * s * (1.f + a * (1.f - s)));  // silu'(a) = s (1 + a (1 - s))
  dg[i * 2 * S + S + j] = (T)(dmk * a * s);
}

// out [rows, S] = in [rows, H] with zero columns past H.
template <class T>
__global__ void pad_columns_kernel(T* out, const T* in, int rows, int H, int S) {
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= (size_t)rows * S) return;
  size_t r = k / S, c = k % S;
  out[k] = c < (size_t)H ? in[r * H + c] : (T)0.f;
}

// out [rows, H] += in [rows, S] (its first H columns).
template <class T>
__global__ void add_unpadded_kernel(T* out, const T* in, int rows, int H, int S) {
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= (size_t)rows * H) return;
  size_t r = k / H, c = k % H;
  out[k] = (T)((float)out[k] + (float)in[r * S + c]);
}

// W12p [2S, d]: W12's a-rows at [0, H), its b-rows at [S, S + H), zero rows between, so the product
// g = x W12p^T has aligned halves and zero padding columns.
template <class T>
__global__ void pad_w12_kernel(T* W12p, const T* W12, int d, int H, int S) {
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= (size_t)2 * S * d) return;
  size_t r = k / d, c = k % d, half = r / S, j = r % S;
  W12p[k] = j < (size_t)H ? W12[(half * H + j) * d + c] : (T)0.f;
}

// dW12 [2H, d] += dW12p [2S, d] (its real rows).
template <class T>
__global__ void add_unpadded_w12_kernel(T* dW12, const T* dW12p, int d, int H, int S) {
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= (size_t)2 * H * d) return;
  size_t r = k / d, c = k % d, half = r / H, j = r % H;
  dW12[k] = (T)((float)dW12[k] + (float)dW12p[(half * S + j) * d + c]);
}

// The padded copies of both weights: W12p [2S, d] then W3p [d, S].
template <class T>
void pad_weights(T* W12p, T* W3p, const T* W12, const T* W3, int d, int H, int S, cudaStream_t stream) {
  pad_w12_kernel<<<blocks_for((size_t)2 * S * d), kThreads, 0, stream>>>(W12p, W12, d, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  pad_columns_kernel<<<blocks_for((size_t)d * S), kThreads, 0, stream>>>(W3p, W3, d, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

// Every product below has dimensions N, d, S or 2S: with S a multiple of 16, all aligned.
template <class T>
void swiglu_forward_cuda(T* y, T* g, T* m, const T* x, const T* W12, const T* W3, int N, int d, int H, T* workspace,
                         Gemm gemm, cudaStream_t stream) {
  if (N == 0) return;
  int S = swiglu_stride_cuda(H);
  T* W12p = workspace;
  T* W3p = workspace + (size_t)2 * S * d;
  pad_weights(W12p, W3p, W12, W3, d, H, S, stream);
  gemm_rows_cuda(false, true, N, 2 * S, d, x, d, W12p, d, 0.f, g, 2 * S, gemm, stream);  // g = x W12p^T
  size_t n = (size_t)N * S;
  swiglu_gate_kernel<<<blocks_for(n), kThreads, 0, stream>>>(m, g, n, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  gemm_rows_cuda(false, true, N, d, S, m, S, W3p, S, 0.f, y, d, gemm, stream);  // y = m W3p^T
}

template <class T>
void swiglu_backward_cuda(T* dx, T* dW12, T* dW3, const T* dy, const T* x, const T* g, const T* m, const T* W12,
                          const T* W3, int N, int d, int H, T* scratch, T* workspace, Gemm gemm, cudaStream_t stream) {
  if (N == 0) return;
  int S = swiglu_stride_cuda(H);
  T* dm = scratch;                  // [N, S]
  T* dg = scratch + (size_t)N * S;  // [N, 2S], zero in the padding columns
  T* W12p = workspace;              // [2S, d], then W3p [d, S]; reused for dW12p and dW3p below
  T* W3p = workspace + (size_t)2 * S * d;
  T* dW3p = workspace + (size_t)3 * S * d;  // [d, S]
  pad_weights(W12p, W3p, W12, W3, d, H, S, stream);
  gemm_rows_cuda(false, false, N, S, d, dy, d, W3p, S, 0.f, dm, S, gemm, stream);  // dm = dy W3p
  gemm_rows_cuda(true, false, d, S, N, dy, d, m, S, 0.f, dW3p, S, gemm, stream);   // dW3p = dy^T m
  add_unpadded_kernel<<<blocks_for((size_t)d * H), kThreads, 0, stream>>>(dW3, dW3p, d, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  size_t n = (size_t)N * S;
  swiglu_gate_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(dg, dm, g, n, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  gemm_rows_cuda(false, false, N, d, 2 * S, dg, 2 * S, W12p, d, 0.f, dx, d, gemm, stream);  // dx = dg W12p
  T* dW12p = W12p;  // W12p is no longer needed: its space takes dW12p [2S, d]
  gemm_rows_cuda(true, false, 2 * S, d, N, dg, 2 * S, x, d, 0.f, dW12p, d, gemm, stream);  // dW12p = dg^T x
  add_unpadded_w12_kernel<<<blocks_for((size_t)2 * H * d), kThreads, 0, stream>>>(dW12, dW12p, d, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template void swiglu_forward_cuda<float>(float*, float*, float*, const float*, const float*, const float*, int, int,
                                         int, float*, Gemm, cudaStream_t);
template void swiglu_backward_cuda<float>(float*, float*, float*, const float*, const float*, const float*,
                                          const float*, const float*, const float*, int, int, int, float*, float*,
                                          Gemm, cudaStream_t);

}  // namespace bytelm
