#include "core/bf16.h"
#include "core/error.h"
#include "layers/cuda_common.cuh"
#include "layers/swiglu_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

// The gate kernels run a thread per pack of n hidden columns (S is a multiple of 16, so rows hold whole
// packs and stay 16-byte aligned); pack k is row k / (S / n), columns from (k % (S / n)) n.

// m = silu(a) * b for g = [a | b] per row (row stride 2S, b at column S); m is zero past H.
template <class T>
__global__ void swiglu_gate_kernel(T* m, const T* g, size_t packs, int H, int S) {
  constexpr int n = Pack<T>::n;
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= packs) return;
  size_t i = k / (S / n);
  int j0 = (int)(k % (S / n)) * n;
  Pack<T> a = load_pack(g + i * 2 * S, j0, S, true), b = load_pack(g + i * 2 * S + S, j0, S, true), out;
#pragma unroll
  for (int j = 0; j < n; j++) {
    float aj = a.get(j);
    out.set(j, j0 + j < H ? aj / (1.f + expf(-aj)) * b.get(j) : 0.f);
  }
  store_pack(m + i * S, j0, S, true, out);
}

// dg from dm; zero in the padding columns, which the products read.
template <class T>
__global__ void swiglu_gate_backward_kernel(T* dg, const T* dm, const T* g, size_t packs, int H, int S) {
  constexpr int n = Pack<T>::n;
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= packs) return;
  size_t i = k / (S / n);
  int j0 = (int)(k % (S / n)) * n;
  Pack<T> a = load_pack(g + i * 2 * S, j0, S, true), b = load_pack(g + i * 2 * S + S, j0, S, true),
          d = load_pack(dm + i * S, j0, S, true), da, db;
#pragma unroll
  for (int j = 0; j < n; j++) {
    float aj = a.get(j), bj = b.get(j), dmj = d.get(j), s = 1.f / (1.f + expf(-aj));
    bool real = j0 + j < H;
    da.set(j, real ? dmj * bj * s * (1.f + aj * (1.f - s)) : 0.f);  // silu'(a) = s (1 + a (1 - s))
    db.set(j, real ? dmj * aj * s : 0.f);
  }
  store_pack(dg + i * 2 * S, j0, S, true, da);
  store_pack(dg + i * 2 * S + S, j0, S, true, db);
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
__global__ void add_unpadded_kernel(float* out, const float* in, int rows, int H, int S) {
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= (size_t)rows * H) return;
  size_t r = k / H, c = k % H;
  out[k] += in[r * S + c];
}

}  // namespace

// The products read W12's halves in place ([H, d] each, rows of d: aligned) and write or read g's halves at row
// stride 2S; W3's rows of H are not, hence W3p. H itself may be odd as a product's M, N or K: only leading
// dimensions and the start of each operand need 16-byte alignment for the tensor-core kernels.
template <class A>
void swiglu_forward_cuda(A* y, A* g, A* m, A* W3p, const A* x, const A* W12, const A* W3, int N, int d, int H,
                         const A* residual, Gemm gemm, cudaStream_t stream) {
  if (N == 0) return;
  int S = swiglu_stride_cuda(H);
  if (!packable(g, 2 * S) || !packable(m, S)) throw Error("swiglu_forward_cuda: g and m must be 16-byte aligned");
  pad_columns_kernel<<<blocks_for((size_t)d * S), kThreads, 0, stream>>>(W3p, W3, d, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  for (int half = 0; half < 2; half++)  // a = x W12[:H]^T into g[:, :H], b = x W12[H:]^T into g[:, S:S+H]
    gemm_rows_cuda(false, true, N, H, d, x, d, W12 + (size_t)half * H * d, d, 0.f, g + (size_t)half * S, 2 * S, gemm,
                   stream);
  size_t packs = (size_t)N * S / Pack<A>::n;
  swiglu_gate_kernel<<<blocks_for(packs), kThreads, 0, stream>>>(m, g, packs, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  if (residual)
    gemm_rows_add_cuda(false, true, N, d, S, m, S, W3p, S, residual, d, y, d, gemm, stream);  // y = residual + m W3p^T
  else
    gemm_rows_cuda(false, true, N, d, S, m, S, W3p, S, 0.f, y, d, gemm, stream);  // y = m W3p^T
}

template <class A>
void swiglu_backward_cuda(A* dx, float* dW12, float* dW3, const A* dy, const A* x, const A* g, const A* m,
                          const A* W12, const A* W3p, int N, int d, int H, A* scratch, void* workspace, Gemm gemm,
                          cudaStream_t stream) {
  if (N == 0) return;
  int S = swiglu_stride_cuda(H);
  A* dm = scratch;                  // [N, S]
  A* dg = scratch + (size_t)N * S;  // [N, 2S], zero in the padding columns
  float* dW3p = (float*)workspace;  // [d, S]
  if (!packable(g, 2 * S) || !packable(scratch, S))
    throw Error("swiglu_backward_cuda: g and scratch must be 16-byte aligned");
  gemm_rows_cuda(false, false, N, S, d, dy, d, W3p, S, 0.f, dm, S, gemm, stream);  // dm = dy W3p
  gemm_rows_cuda(true, false, d, S, N, dy, d, m, S, 0.f, dW3p, S, gemm, stream);   // dW3p = dy^T m
  add_unpadded_kernel<<<blocks_for((size_t)d * H), kThreads, 0, stream>>>(dW3, dW3p, d, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  size_t packs = (size_t)N * S / Pack<A>::n;
  swiglu_gate_backward_kernel<<<blocks_for(packs), kThreads, 0, stream>>>(dg, dm, g, packs, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  for (int half = 0; half < 2; half++) {
    const A* dg_half = dg + (size_t)half * S;
    const A* W12_half = W12 + (size_t)half * H * d;
    // dx = dg[:, :H] W12[:H] + dg[:, S:S+H] W12[H:], and dW12's half += dg's half^T x, straight into the fp32 gradient
    gemm_rows_cuda(false, false, N, d, H, dg_half, 2 * S, W12_half, d, half ? 1.f : 0.f, dx, d, gemm, stream);
    gemm_rows_cuda(true, false, H, d, N, dg_half, 2 * S, x, d, 1.f, dW12 + (size_t)half * H * d, d, gemm, stream);
  }
}

#define BYTELM_INSTANTIATE(A)                                                                                    \
  template void swiglu_forward_cuda<A>(A*, A*, A*, A*, const A*, const A*, const A*, int, int, int, const A*,     \
                                       Gemm, cudaStream_t);                                                      \
  template void swiglu_backward_cuda<A>(A*, float*, float*, const A*, const A*, const A*, const A*, const A*,     \
                                        const A*, int, int, int, A*, void*, Gemm, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
