#include "core/bf16.h"
#include "layers/cuda_common.cuh"
#include "layers/patch_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

// Every kernel but the start column sum runs a thread per pack of an output row's columns (row_packs in
// cuda_common.cuh; the row is pack_row()), so no thread divides a 64-bit index.

// p[b, j] = mean of the patch's P bytes, summed in order, then divided (as the CPU).
template <class T>
__global__ void patch_mean_forward_kernel(T* p, const T* e, int B, int T_, int P, int Np, int d, bool vec) {
  constexpr int n = Pack<T>::n;
  int bj = pack_row(), b = bj / Np, j = bj % Np, c0 = pack_column(n);
  if (b >= B || c0 >= d) return;
  const T* src = e + ((size_t)b * T_ + (size_t)j * P) * d;
  float s[n] = {};
  for (int r = 0; r < P; r++) {
    Pack<T> x = load_pack(src + (size_t)r * d, c0, d, vec);
#pragma unroll
    for (int k = 0; k < n; k++) s[k] += x.get(k);
  }
  Pack<T> out;
#pragma unroll
  for (int k = 0; k < n; k++) out.set(k, s[k] / P);
  store_pack(p + (size_t)bj * d, c0, d, vec, out);
}

// de += dp / P over the bytes inside complete patches: one block row per byte row of [B, Np*P].
template <class T>
__global__ void patch_mean_backward_kernel(T* de, const T* dp, int B, int T_, int P, int Np, int d, bool vec) {
  constexpr int n = Pack<T>::n;
  int bt = pack_row(), b = bt / (Np * P), t = bt % (Np * P), c0 = pack_column(n);
  if (b >= B || c0 >= d) return;
  T* row = de + ((size_t)b * T_ + t) * d;
  Pack<T> x = load_pack((const T*)row, c0, d, vec), g = load_pack(dp + ((size_t)b * Np + t / P) * d, c0, d, vec);
#pragma unroll
  for (int k = 0; k < n; k++) x.set(k, x.get(k) + g.get(k) / P);
  store_pack(row, c0, d, vec, x);
}

template <class T>
__global__ void patch_broadcast_forward_kernel(T* out, const T* p, const float* start, const T* e, int B, int T_,
                                               int P, int Np, int d, bool vec) {
  constexpr int n = Pack<T>::n;
  int bt = pack_row(), b = bt / T_, t = bt % T_, c0 = pack_column(n);
  if (b >= B || c0 >= d) return;
  int src = (t + 1) / P - 1;  // patch_source(t, P), which is host-only
  Pack<T> x = load_pack(e + (size_t)bt * d, c0, d, vec), v;
  if (src >= 0) v = load_pack(p + ((size_t)b * Np + src) * d, c0, d, vec);
#pragma unroll
  for (int k = 0; k < n; k++) x.set(k, x.get(k) + (src >= 0 ? v.get(k) : (c0 + k < d ? start[c0 + k] : 0.f)));
  store_pack(out + (size_t)bt * d, c0, d, vec, x);
}

// dp[b, k] (overwritten): patch k is read by bytes [(k+1)P - 1, (k+2)P - 1) ∩ [0, T).
template <class T>
__global__ void patch_broadcast_backward_kernel(T* dp, const T* dout, int B, int T_, int P, int Np, int d, bool vec) {
  constexpr int n = Pack<T>::n;
  int bk = pack_row(), b = bk / Np, k = bk % Np, c0 = pack_column(n);
  if (b >= B || c0 >= d) return;
  int t_end = (k + 2) * P - 1 < T_ ? (k + 2) * P - 1 : T_;
  float s[n] = {};
  for (int t = (k + 1) * P - 1; t < t_end; t++) {
    Pack<T> g = load_pack(dout + ((size_t)b * T_ + t) * d, c0, d, vec);
#pragma unroll
    for (int j = 0; j < n; j++) s[j] += g.get(j);
  }
  Pack<T> out;
#pragma unroll
  for (int j = 0; j < n; j++) out.set(j, s[j]);
  store_pack(dp + (size_t)bk * d, c0, d, vec, out);
}

// dstart[c] += sum over b, then t < min(P - 1, T), of dout[b, t, c]: one thread per column, its rows in one
// unrolled loop so that several loads are in flight (at P = 2, one row a sequence: a nested loop waited out each).
template <class T>
__global__ void patch_start_backward_kernel(float* dstart, const T* dout, int B, int T_, int P, int d) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= d) return;
  int t_end = P - 1 < T_ ? P - 1 : T_;
  float s = 0.f;
#pragma unroll 8
  for (int i = 0; i < B * t_end; i++) {  // b-major, as the nested loops were
    int b = i / t_end, t = i % t_end;
    s += (float)dout[((size_t)b * T_ + t) * d + c];
  }
  dstart[c] += s;
}

}  // namespace

template <class A>
void patch_mean_forward_cuda(A* p, const A* e, int B, int T_, int P, int d, cudaStream_t stream) {
  int Np = patch_count(T_, P);
  if ((size_t)B * Np * d == 0) return;
  RowPacks l = row_packs<A>((size_t)B * Np, d);
  patch_mean_forward_kernel<<<l.grid, l.block, 0, stream>>>(p, e, B, T_, P, Np, d, packable(p, d) && packable(e, d));
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
void patch_mean_backward_cuda(A* de, const A* dp, int B, int T_, int P, int d, cudaStream_t stream) {
  int Np = patch_count(T_, P);
  if ((size_t)B * Np * d == 0) return;
  RowPacks l = row_packs<A>((size_t)B * Np * P, d);
  patch_mean_backward_kernel<<<l.grid, l.block, 0, stream>>>(de, dp, B, T_, P, Np, d,
                                                             packable(de, d) && packable(dp, d));
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
void patch_broadcast_forward_cuda(A* out, const A* p, const float* start, const A* e, int B, int T_, int P, int d,
                                  cudaStream_t stream) {
  if ((size_t)B * T_ * d == 0) return;
  bool vec = packable(out, d) && packable(p, d) && packable(e, d);
  RowPacks l = row_packs<A>((size_t)B * T_, d);
  patch_broadcast_forward_kernel<<<l.grid, l.block, 0, stream>>>(out, p, start, e, B, T_, P, patch_count(T_, P), d,
                                                                 vec);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
void patch_broadcast_backward_cuda(A* dp, float* dstart, A* de, const A* dout, int B, int T_, int P, int d,
                                   cudaStream_t stream) {
  size_t n = (size_t)B * T_ * d;
  if (n == 0) return;
  BYTELM_CUDA_CHECK(cudaMemcpyAsync(de, dout, sizeof(A) * n, cudaMemcpyDeviceToDevice, stream));
  int Np = patch_count(T_, P);
  if ((size_t)B * Np * d > 0) {
    RowPacks l = row_packs<A>((size_t)B * Np, d);
    patch_broadcast_backward_kernel<<<l.grid, l.block, 0, stream>>>(dp, dout, B, T_, P, Np, d,
                                                                     packable(dp, d) && packable(dout, d));
    BYTELM_CUDA_CHECK(cudaGetLastError());
  }
  patch_start_backward_kernel<<<blocks_for(d), kThreads, 0, stream>>>(dstart, dout, B, T_, P, d);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

#define BYTELM_INSTANTIATE(A)                                                                                   \
  template void patch_mean_forward_cuda<A>(A*, const A*, int, int, int, int, cudaStream_t);                    \
  template void patch_mean_backward_cuda<A>(A*, const A*, int, int, int, int, cudaStream_t);                   \
  template void patch_broadcast_forward_cuda<A>(A*, const A*, const float*, const A*, int, int, int, int,      \
                                                cudaStream_t);                                                 \
  template void patch_broadcast_backward_cuda<A>(A*, float*, A*, const A*, int, int, int, int, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
