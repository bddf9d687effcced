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
  if (j >= (size_t)H) return;  // the padding of dg is never read
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

template <class T>
void pad_w3(T* W3p, const T* W3, int d, int H, int S, cudaStream_t stream) {
  pad_columns_kernel<<<blocks_for((size_t)d * S), kThreads, 0, stream>>>(W3p, W3, d, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

template <class T>
void swiglu_forward_cuda(T* y, T* g, T* m, const T* x, const T* W12, const T* W3, int N, int d, int H, T* workspace,
                         Gemm gemm, cudaStream_t stream) {
  if (N == 0) return;
  int S = swiglu_stride_cuda(H);
  T* W3p = workspace;
  // a = x W12[0:H]^T and b = x W12[H:2H]^T, each into its aligned half of g
  gemm_rows_cuda(false, true, N, H, d, x, d, W12, d, 0.f, g, 2 * S, gemm, stream);
  gemm_rows_cuda(false, true, N, H, d, x, d, W12 + (size_t)H * d, d, 0.f, g + S, 2 * S, gemm, stream);
  size_t n = (size_t)N * S;
  swiglu_gate_kernel<<<blocks_for(n), kThreads, 0, stream>>>(m, g, n, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  pad_w3(W3p, W3, d, H, S, stream);
  gemm_rows_cuda(false, true, N, d, S, m, S, W3p, S, 0.f, y, d, gemm, stream);
}

template <class T>
void swiglu_backward_cuda(T* dx, T* dW12, T* dW3, const T* dy, const T* x, const T* g, const T* m, const T* W12,
                          const T* W3, int N, int d, int H, T* scratch, T* workspace, Gemm gemm, cudaStream_t stream) {
  if (N == 0) return;
  int S = swiglu_stride_cuda(H);
  T* dm = scratch;                  // [N, S]
  T* dg = scratch + (size_t)N * S;  // [N, 2S]
  T* W3p = workspace;               // [d, S]
  T* dW3p = workspace + (size_t)d * S;
  pad_w3(W3p, W3, d, H, S, stream);
  gemm_rows_cuda(false, false, N, S, d, dy, d, W3p, S, 0.f, dm, S, gemm, stream);    // dm = dy W3
  gemm_rows_cuda(true, false, d, S, N, dy, d, m, S, 0.f, dW3p, S, gemm, stream);     // dW3 = dy^T m
  add_unpadded_kernel<<<blocks_for((size_t)d * H), kThreads, 0, stream>>>(dW3, dW3p, d, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  size_t n = (size_t)N * S;
  swiglu_gate_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(dg, dm, g, n, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  const T* W12b = W12 + (size_t)H * d;
  gemm_rows_cuda(true, false, H, d, N, dg, 2 * S, x, d, 1.f, dW12, d, gemm, stream);                    // dW12[0:H]
  gemm_rows_cuda(true, false, H, d, N, dg + S, 2 * S, x, d, 1.f, dW12 + (size_t)H * d, d, gemm, stream);  // dW12[H:2H]
  gemm_rows_cuda(false, false, N, d, H, dg, 2 * S, W12, d, 0.f, dx, d, gemm, stream);
  gemm_rows_cuda(false, false, N, d, H, dg + S, 2 * S, W12b, d, 1.f, dx, d, gemm, stream);
}

template void swiglu_forward_cuda<float>(float*, float*, float*, const float*, const float*, const float*, int, int,
                                         int, float*, Gemm, cudaStream_t);
template void swiglu_backward_cuda<float>(float*, float*, float*, const float*, const float*, const float*,
                                          const float*, const float*, const float*, int, int, int, float*, float*,
                                          Gemm, cudaStream_t);

}  // namespace bytelm
