#include "core/bf16.h"
#include "layers/cuda_common.cuh"
#include "layers/patch.h"
#include "layers/patch_entropy.h"
#include "layers/patch_entropy_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

constexpr int kRowWarps = kThreads / 32;
constexpr int kSegmentThreads = 64;  // rows walked per block of the segmentation

__device__ inline double warp_sum_double(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ inline double warp_max_double(double v) {
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

struct RowStats {
  float entropy_bits, lse;
};

// A warp: the entropy (bits) and log-sum-exp of softmax(kBigramLogitScale * row), in double, every lane.
__device__ RowStats bigram_row_stats(const float* row) {
  int lane = threadIdx.x % 32;
  double l[8], mx = -INFINITY;
#pragma unroll
  for (int j = 0; j < 8; j++) mx = fmax(mx, l[j] = kBigramLogitScale * (double)row[lane + 32 * j]);
  mx = warp_max_double(mx);
  double s = 0;
#pragma unroll
  for (int j = 0; j < 8; j++) s += exp(l[j] - mx);
  double lse = mx + log(warp_sum_double(s)), expected = 0;
#pragma unroll
  for (int j = 0; j < 8; j++) expected += exp(l[j] - lse) * l[j];
  expected = warp_sum_double(expected);
  return {(float)((lse - expected) / log(2.0)), (float)lse};
}

// A warp a table row: its entropy and/or log-sum-exp (either may be null).
__global__ void bigram_rows_kernel(float* entropy, float* lse, const float* G) {
  int a = blockIdx.x * kRowWarps + threadIdx.x / 32;
  if (a >= 256) return;
  RowStats r = bigram_row_stats(G + (size_t)a * 256);
  if (threadIdx.x % 32 == 0) {
    if (entropy) entropy[a] = r.entropy_bits;
    if (lse) lse[a] = r.lse;
  }
}

void bigram_rows(float* entropy, float* lse, const float* G, cudaStream_t stream) {
  bigram_rows_kernel<<<256 / kRowWarps, kThreads, 0, stream>>>(entropy, lse, G);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

// A thread a row, as entropy_patches: closed patches fill the first slots, the rest are padding.
__global__ void entropy_segment_kernel(int* first, int* length, int* source, const uint8_t* x, const float* entropy,
                                       int B, int T_, int P, int slots, double threshold) {
  __shared__ float H[256];
  for (int a = threadIdx.x; a < 256; a += blockDim.x) H[a] = entropy[a];
  __syncthreads();
  int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= B) return;
  int closed = 0, open_first = 0;
  size_t row = (size_t)b * T_, slot0 = (size_t)b * slots;
  for (int t = 0; t < T_; t++) {
    if (entropy_patch_closes(t + 1 - open_first, H[x[row + t]], P, threshold)) {
      first[slot0 + closed] = open_first;
      length[slot0 + closed] = t + 1 - open_first;
      closed++;
      open_first = t + 1;
    }
    source[row + t] = closed - 1;
  }
  for (int j = closed; j < slots; j++) first[slot0 + j] = 0, length[slot0 + j] = 0;
}

// A thread a pack of a slot's columns (row_packs): the mean of the patch's bytes, in order (0 for padding).
template <class T>
__global__ void entropy_pool_forward_kernel(T* p, const T* e, const int* first, const int* length, int B, int T_,
                                            int slots, int d, bool vec) {
  constexpr int n = Pack<T>::n;
  int slot = pack_row(), c0 = pack_column(n);
  if (slot >= B * slots || c0 >= d) return;
  int len = length[slot];
  const T* src = e + ((size_t)(slot / slots) * T_ + first[slot]) * d;
  float s[n] = {};
  for (int r = 0; r < len; r++) {
    Pack<T> x = load_pack(src + (size_t)r * d, c0, d, vec);
#pragma unroll
    for (int k = 0; k < n; k++) s[k] += x.get(k);
  }
  Pack<T> out;
#pragma unroll
  for (int k = 0; k < n; k++) out.set(k, len ? s[k] / len : 0.f);
  store_pack(p + (size_t)slot * d, c0, d, vec, out);
}

// de += dp / len over each patch's bytes (a byte lies in one patch at most: one writer).
template <class T>
__global__ void entropy_pool_backward_kernel(T* de, const T* dp, const int* first, const int* length, int B, int T_,
                                             int slots, int d, bool vec) {
  constexpr int n = Pack<T>::n;
  int slot = pack_row(), c0 = pack_column(n);
  if (slot >= B * slots || c0 >= d) return;
  int len = length[slot];
  if (!len) return;
  T* dst = de + ((size_t)(slot / slots) * T_ + first[slot]) * d;
  Pack<T> g = load_pack(dp + (size_t)slot * d, c0, d, vec);
  for (int r = 0; r < len; r++) {
    Pack<T> x = load_pack((const T*)dst + (size_t)r * d, c0, d, vec);
#pragma unroll
    for (int k = 0; k < n; k++) x.set(k, x.get(k) + g.get(k) / len);
    store_pack(dst + (size_t)r * d, c0, d, vec, x);
  }
}

// out[b, t] = (source >= 0 ? p[b, source] : start) + e[b, t]: a thread a pack of a byte's columns.
template <class T>
__global__ void entropy_broadcast_forward_kernel(T* out, const T* p, const float* start, const T* e,
                                                 const int* source, int B, int T_, int slots, int d, bool vec) {
  constexpr int n = Pack<T>::n;
  int bt = pack_row(), c0 = pack_column(n);
  if (bt >= B * T_ || c0 >= d) return;
  int src = source[bt];
  Pack<T> x = load_pack(e + (size_t)bt * d, c0, d, vec), v;
  if (src >= 0) v = load_pack(p + ((size_t)(bt / T_) * slots + src) * d, c0, d, vec);
#pragma unroll
  for (int k = 0; k < n; k++) x.set(k, (src >= 0 ? v.get(k) : (c0 + k < d ? start[c0 + k] : 0.f)) + x.get(k));
  store_pack(out + (size_t)bt * d, c0, d, vec, x);
}

// dp[b, k] (overwritten) = the sum of dout over the bytes that read slot k: from its last byte up to the next
// patch's last byte (or the row's end); padding slots are read by none.
template <class T>
__global__ void entropy_broadcast_backward_kernel(T* dp, const T* dout, const int* first, const int* length,
                                                  const int* source, int B, int T_, int slots, int d, bool vec) {
  constexpr int n = Pack<T>::n;
  int slot = pack_row(), k = slot % slots, c0 = pack_column(n);
  if (slot >= B * slots || c0 >= d) return;
  size_t row = (size_t)(slot / slots) * T_;
  float s[n] = {};
  if (length[slot])
    for (int t = first[slot] + length[slot] - 1; t < T_ && source[row + t] == k; t++) {
      Pack<T> g = load_pack(dout + (row + t) * d, c0, d, vec);
#pragma unroll
      for (int j = 0; j < n; j++) s[j] += g.get(j);
    }
  Pack<T> out;
#pragma unroll
  for (int j = 0; j < n; j++) out.set(j, s[j]);
  store_pack(dp + (size_t)slot * d, c0, d, vec, out);
}

// dstart[c] += the sum over rows b, then their bytes before the first patch closes, of dout: a thread a column.
template <class T>
__global__ void entropy_start_backward_kernel(float* dstart, const T* dout, const int* source, int B, int T_, int d) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= d) return;
  float s = 0.f;
  for (int b = 0; b < B; b++)
    for (size_t t = (size_t)b * T_; t < (size_t)(b + 1) * T_ && source[t] < 0; t++) s += (float)dout[t * d + c];
  dstart[c] += s;
}

__global__ void bigram_loss_kernel(float* loss, const float* lse, const float* G, const uint8_t* x, const uint8_t* y,
                                   int N) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < N) loss[i] = lse[x[i]] - (float)kBigramLogitScale * G[(size_t)x[i] * 256 + y[i]];
}

__global__ void bigram_count_kernel(int* rows, int* pairs, const uint8_t* x, const uint8_t* y, int N) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N) return;
  atomicAdd(rows + x[i], 1);  // integer sums: exact in any order
  atomicAdd(pairs + (size_t)x[i] * 256 + y[i], 1);
}

// dG[a, k] += s (count[a] softmax(s G[a])_k - pairs[a, k]), s = kBigramLogitScale * scale: a block a read row.
__global__ void bigram_grad_kernel(float* dG, const float* G, const float* lse, const int* rows, const int* pairs,
                                   float s) {
  int a = blockIdx.x, k = threadIdx.x;
  if (!rows[a]) return;
  size_t i = (size_t)a * 256 + k;
  float p = expf((float)kBigramLogitScale * G[i] - lse[a]);
  dG[i] += s * rows[a] * p - s * pairs[i];
}

// A warp a stream, as patch_entropy_step.
template <class T>
__global__ void entropy_step_kernel(T* patch, int* closes, float* sum, int* length, int* source, const T* e,
                                    const uint8_t* x, const float* G, int B, int P, int d, double threshold) {
  int b = blockIdx.x * kRowWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (b >= B) return;
  RowStats r = bigram_row_stats(G + (size_t)x[b] * 256);
  int n = length[b] + 1;
  bool close = entropy_patch_closes(n, r.entropy_bits, P, threshold);
  float* s = sum + (size_t)b * d;
  for (int c = lane; c < d; c += 32) {
    float v = s[c] + (float)e[(size_t)b * d + c];
    if (close) patch[(size_t)b * d + c] = (T)(v / n);
    s[c] = close ? 0.f : v;
  }
  __syncwarp();  // every lane has read length[b]
  if (lane == 0) {
    length[b] = close ? 0 : n;
    closes[b] = close;
    if (close) source[b] = 0;
  }
}

template <class A>
bool vec_rows(const A* a, const A* b, int d) {
  return packable(a, d) && packable(b, d);
}

void grow(DeviceBuffer<int>& buf, size_t n) {
  if (buf.size() < n) buf.assign_zero(n);
}

}  // namespace

void entropy_patches_cuda(EntropyPatchesCuda& s, const float* G, const uint8_t* x, int B, int T_, int P,
                          double threshold, float* scratch, cudaStream_t stream) {
  s.B = B;
  s.T = T_;
  s.slots = patch_count(T_, P);
  grow(s.first, (size_t)B * s.slots);
  grow(s.length, (size_t)B * s.slots);
  grow(s.source, (size_t)B * T_);
  if ((size_t)B * T_ == 0) return;
  bigram_rows(scratch, nullptr, G, stream);
  entropy_segment_kernel<<<blocks_for(B, kSegmentThreads), kSegmentThreads, 0, stream>>>(
      s.first.data(), s.length.data(), s.source.data(), x, scratch, B, T_, P, s.slots, threshold);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

void entropy_stream_patches_cuda(EntropyPatchesCuda& s, int B, cudaStream_t stream) {
  s.B = B;
  s.T = 1;
  s.slots = 1;
  grow(s.first, B);
  grow(s.length, B);
  grow(s.source, B);
  BYTELM_CUDA_CHECK(cudaMemsetAsync(s.source.data(), 0xFF, sizeof(int) * B, stream));  // all ones: -1
}

template <class A>
void patch_entropy_pool_forward_cuda(A* p, const A* e, const EntropyPatchesCuda& s, int d, cudaStream_t stream) {
  if ((size_t)s.B * s.slots * d == 0) return;
  RowPacks l = row_packs<A>((size_t)s.B * s.slots, d);
  entropy_pool_forward_kernel<<<l.grid, l.block, 0, stream>>>(p, e, s.first.data(), s.length.data(), s.B, s.T,
                                                               s.slots, d, vec_rows(p, e, d));
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
void patch_entropy_pool_backward_cuda(A* de, const A* dp, const EntropyPatchesCuda& s, int d, cudaStream_t stream) {
  if ((size_t)s.B * s.slots * d == 0) return;
  RowPacks l = row_packs<A>((size_t)s.B * s.slots, d);
  entropy_pool_backward_kernel<<<l.grid, l.block, 0, stream>>>(de, dp, s.first.data(), s.length.data(), s.B, s.T,
                                                                s.slots, d, vec_rows(de, dp, d));
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
void patch_entropy_broadcast_forward_cuda(A* out, const A* p, const float* start, const A* e,
                                          const EntropyPatchesCuda& s, int d, cudaStream_t stream) {
  if ((size_t)s.B * s.T * d == 0) return;
  RowPacks l = row_packs<A>((size_t)s.B * s.T, d);
  entropy_broadcast_forward_kernel<<<l.grid, l.block, 0, stream>>>(
      out, p, start, e, s.source.data(), s.B, s.T, s.slots, d, vec_rows(out, e, d) && packable(p, d));
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
void patch_entropy_broadcast_backward_cuda(A* dp, float* dstart, A* de, const A* dout, const EntropyPatchesCuda& s,
                                           int d, cudaStream_t stream) {
  size_t n = (size_t)s.B * s.T * d;
  if (n == 0) return;
  BYTELM_CUDA_CHECK(cudaMemcpyAsync(de, dout, sizeof(A) * n, cudaMemcpyDeviceToDevice, stream));
  if (s.slots > 0) {
    RowPacks l = row_packs<A>((size_t)s.B * s.slots, d);
    entropy_broadcast_backward_kernel<<<l.grid, l.block, 0, stream>>>(
        dp, dout, s.first.data(), s.length.data(), s.source.data(), s.B, s.T, s.slots, d, vec_rows(dp, dout, d));
    BYTELM_CUDA_CHECK(cudaGetLastError());
  }
  entropy_start_backward_kernel<<<blocks_for(d), kThreads, 0, stream>>>(dstart, dout, s.source.data(), s.B, s.T, d);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

void bigram_loss_forward_cuda(float* loss, const float* G, const uint8_t* x, const uint8_t* y, int N, float* scratch,
                              cudaStream_t stream) {
  if (N == 0) return;
  bigram_rows(nullptr, scratch, G, stream);
  bigram_loss_kernel<<<blocks_for(N), kThreads, 0, stream>>>(loss, scratch, G, x, y, N);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

size_t bigram_loss_backward_cuda_workspace_bytes() { return sizeof(int) * (256 + 256 * 256) + sizeof(float) * 256; }

void bigram_loss_backward_cuda(float* dG, const float* G, const uint8_t* x, const uint8_t* y, int N, float scale,
                               void* workspace, cudaStream_t stream) {
  if (N == 0) return;
  int* rows = static_cast<int*>(workspace);
  int* pairs = rows + 256;
  float* lse = reinterpret_cast<float*>(pairs + 256 * 256);
  BYTELM_CUDA_CHECK(cudaMemsetAsync(rows, 0, sizeof(int) * (256 + 256 * 256), stream));
  bigram_count_kernel<<<blocks_for(N), kThreads, 0, stream>>>(rows, pairs, x, y, N);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  bigram_rows(nullptr, lse, G, stream);
  bigram_grad_kernel<<<256, 256, 0, stream>>>(dG, G, lse, rows, pairs, (float)kBigramLogitScale * scale);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
void patch_entropy_step_cuda(A* patch, int* closes, float* sum, int* length, int* source, const A* e,
                             const uint8_t* x, const float* G, int B, int P, int d, double threshold,
                             cudaStream_t stream) {
  if (B == 0) return;
  entropy_step_kernel<<<blocks_for(B, kRowWarps), kThreads, 0, stream>>>(patch, closes, sum, length, source, e, x, G,
                                                                         B, P, d, threshold);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

#define BYTELM_INSTANTIATE(A)                                                                                      \
  template void patch_entropy_pool_forward_cuda<A>(A*, const A*, const EntropyPatchesCuda&, int, cudaStream_t);    \
  template void patch_entropy_pool_backward_cuda<A>(A*, const A*, const EntropyPatchesCuda&, int, cudaStream_t);   \
  template void patch_entropy_broadcast_forward_cuda<A>(A*, const A*, const float*, const A*,                      \
                                                        const EntropyPatchesCuda&, int, cudaStream_t);             \
  template void patch_entropy_broadcast_backward_cuda<A>(A*, float*, A*, const A*, const EntropyPatchesCuda&, int, \
                                                         cudaStream_t);                                            \
  template void patch_entropy_step_cuda<A>(A*, int*, float*, int*, int*, const A*, const uint8_t*, const float*,   \
                                           int, int, int, double, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
