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

// The padding copies below take a 16-byte pack of the padded side per thread (its rows of S or d elements are
// whole packs); the unpadded side, whose rows of H need not be aligned, is read or written element by element.

// Pack k of rows of `packs_a_row` packs of n elements: its row and its first column.
struct PackAt {
  size_t row;
  int c0;
};
__device__ inline PackAt pack_at(size_t k, size_t packs_a_row, int n) {
  return {k / packs_a_row, (int)(k % packs_a_row) * n};
}

// out [rows, S] = in [rows, H] with zero columns past H.
template <class T>
__global__ void pad_columns_kernel(T* out, const T* in, int rows, int H, int S) {
  constexpr int n = Pack<T>::n;
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x, packs_a_row = S / n;
  if (k >= (size_t)rows * packs_a_row) return;
  auto [r, c0] = pack_at(k, packs_a_row, n);
  Pack<T> p;
#pragma unroll
  for (int j = 0; j < n; j++) p.set(j, c0 + j < H ? (float)in[r * H + c0 + j] : 0.f);
  store_pack(out + r * S, c0, S, true, p);
}

// out [rows, H] += in [rows, S] (its first H columns).
__global__ void add_unpadded_kernel(float* out, const float* in, int rows, int H, int S) {
  constexpr int n = Pack<float>::n;
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x, packs_a_row = S / n;
  if (k >= (size_t)rows * packs_a_row) return;
  auto [r, c0] = pack_at(k, packs_a_row, n);
  Pack<float> p = load_pack(in + r * S, c0, S, true);
#pragma unroll
  for (int j = 0; j < n; j++)
    if (c0 + j < H) out[r * H + c0 + j] += p.get(j);
}

// W12p [2S, d]: W12's a-rows at [0, H), its b-rows at [S, S + H), zero rows between, so the product
// g = x W12p^T has aligned halves and zero padding columns. vec: rows of d are whole packs on both sides.
template <class T>
__global__ void pad_w12_kernel(T* W12p, const T* W12, int d, int H, int S, bool vec) {
  constexpr int n = Pack<T>::n;
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x, packs_a_row = (d + n - 1) / n;
  if (k >= (size_t)2 * S * packs_a_row) return;
  auto [r, c0] = pack_at(k, packs_a_row, n);
  size_t half = r / S, j = r % S;
  Pack<T> p{};
  if (j < (size_t)H) p = load_pack(W12 + (half * H + j) * d, c0, d, vec);
  store_pack(W12p + r * d, c0, d, vec, p);
}

// dW12 [2H, d] += dW12p [2S, d] (its real rows).
__global__ void add_unpadded_w12_kernel(float* dW12, const float* dW12p, int d, int H, int S, bool vec) {
  constexpr int n = Pack<float>::n;
  size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x, packs_a_row = (d + n - 1) / n;
  if (k >= (size_t)2 * H * packs_a_row) return;
  auto [r, c0] = pack_at(k, packs_a_row, n);
  size_t half = r / H, j = r % H;
  float* row = dW12 + r * d;
  Pack<float> a = load_pack(row, c0, d, vec), b = load_pack(dW12p + (half * S + j) * d, c0, d, vec);
#pragma unroll
  for (int i = 0; i < n; i++) a.set(i, a.get(i) + b.get(i));
  store_pack(row, c0, d, vec, a);
}

// The padded weight copies: W12p [2S, d], then W3p [d, S].
template <class T>
struct Padded {
  T *W12p, *W3p;
  Padded(T* base, int d, int S) : W12p(base), W3p(base + (size_t)2 * S * d) {}
};

// Packs of n elements in rows of d.
size_t row_packs_of(size_t rows, int d, int n) { return rows * ((d + n - 1) / n); }

template <class T>
void pad_weights(Padded<T> w, const T* W12, const T* W3, int d, int H, int S, cudaStream_t stream) {
  constexpr int n = Pack<T>::n;
  pad_w12_kernel<<<blocks_for(row_packs_of(2 * S, d, n)), kThreads, 0, stream>>>(
      w.W12p, W12, d, H, S, packable(W12, d) && packable(w.W12p, d));
  BYTELM_CUDA_CHECK(cudaGetLastError());
  pad_columns_kernel<<<blocks_for(row_packs_of(d, S, n)), kThreads, 0, stream>>>(w.W3p, W3, d, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

// Every product below has dimensions N, d, S or 2S: with S a multiple of 16, all aligned.
template <class A>
void swiglu_forward_cuda(A* y, A* g, A* m, const A* x, const A* W12, const A* W3, int N, int d, int H,
                         const A* residual, A* padded, Gemm gemm, cudaStream_t stream) {
  if (N == 0) return;
  int S = swiglu_stride_cuda(H);
  if (!packable(g, 2 * S) || !packable(m, S)) throw Error("swiglu_forward_cuda: g and m must be 16-byte aligned");
  Padded<A> w(padded, d, S);
  pad_weights(w, W12, W3, d, H, S, stream);
  gemm_rows_cuda(false, true, N, 2 * S, d, x, d, w.W12p, d, 0.f, g, 2 * S, gemm, stream);  // g = x W12p^T
  size_t packs = (size_t)N * S / Pack<A>::n;
  swiglu_gate_kernel<<<blocks_for(packs), kThreads, 0, stream>>>(m, g, packs, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  if (residual)
    gemm_rows_add_cuda(false, true, N, d, S, m, S, w.W3p, S, residual, d, y, d, gemm, stream);  // y = residual + m W3p^T
  else
    gemm_rows_cuda(false, true, N, d, S, m, S, w.W3p, S, 0.f, y, d, gemm, stream);  // y = m W3p^T
}

template <class A>
void swiglu_backward_cuda(A* dx, float* dW12, float* dW3, const A* dy, const A* x, const A* g, const A* m,
                          const A* padded, int N, int d, int H, A* scratch, float* dw_scratch, Gemm gemm,
                          cudaStream_t stream) {
  if (N == 0) return;
  int S = swiglu_stride_cuda(H);
  A* dm = scratch;                  // [N, S]
  A* dg = scratch + (size_t)N * S;  // [N, 2S], zero in the padding columns
  if (!packable(g, 2 * S) || !packable(scratch, S))
    throw Error("swiglu_backward_cuda: g and scratch must be 16-byte aligned");
  Padded<const A> w(padded, d, S);
  float* dWp = dw_scratch;
  gemm_rows_cuda(false, false, N, S, d, dy, d, w.W3p, S, 0.f, dm, S, gemm, stream);  // dm = dy W3p
  gemm_rows_cuda(true, false, d, S, N, dy, d, m, S, 0.f, dWp, S, gemm, stream);      // dW3p = dy^T m
  add_unpadded_kernel<<<blocks_for(row_packs_of(d, S, Pack<float>::n)), kThreads, 0, stream>>>(dW3, dWp, d, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  size_t packs = (size_t)N * S / Pack<A>::n;
  swiglu_gate_backward_kernel<<<blocks_for(packs), kThreads, 0, stream>>>(dg, dm, g, packs, H, S);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  gemm_rows_cuda(false, false, N, d, 2 * S, dg, 2 * S, w.W12p, d, 0.f, dx, d, gemm, stream);  // dx = dg W12p
  gemm_rows_cuda(true, false, 2 * S, d, N, dg, 2 * S, x, d, 0.f, dWp, d, gemm, stream);       // dW12p = dg^T x
  add_unpadded_w12_kernel<<<blocks_for(row_packs_of(2 * H, d, Pack<float>::n)), kThreads, 0, stream>>>(
      dW12, dWp, d, H, S, packable(dW12, d) && packable(dWp, d));
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

#define BYTELM_INSTANTIATE(A)                                                                                    \
  template void swiglu_forward_cuda<A>(A*, A*, A*, const A*, const A*, const A*, int, int, int, const A*, A*,    \
                                       Gemm, cudaStream_t);                                                      \
  template void swiglu_backward_cuda<A>(A*, float*, float*, const A*, const A*, const A*, const A*, const A*, int, \
                                        int, int, A*, float*, Gemm, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
