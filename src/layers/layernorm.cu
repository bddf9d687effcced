#include "core/bf16.h"
#include "layers/cuda_common.cuh"
#include "layers/layernorm_cuda.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace bytelm {

using namespace cuda;

namespace {

// Both kernels spread a row over a row group of `row_threads` threads, one 16-byte pack of the row each (a warp
// for rows up to 32 packs, several warps beyond), with `lanes` groups a block. Group k of the grid walks rows
// k, k + groups, ... (rows_each of them, the same count in every thread, since a block may synchronise in the
// loop), loading each row's packs one iteration ahead so they are in flight while the previous row is reduced.
// A thread holds its pack's columns of w (and b) in registers for all its rows.
struct RowGroups {
  int row_threads, lanes, blocks, rows_each;
};

constexpr int kRowsEach = 4;        // rows a group takes at least
constexpr int kMaxSumBlocks = 1024;  // backward: blocks, each writing a partial row of dw and db, at most
constexpr size_t kMaxSmem = 227 * 1024;  // backward: an sm_90 block's shared memory at most

// The blocks of `kernel` (at this block size and shared memory) that the device holds at once: one wave. Both
// kernels walk their rows in a loop, so a grid of one wave leaves no tail of later blocks and, in the backward,
// fewer partial rows to sum: on the H100 the backwards ran 10-12% faster and the plain forward 8% than with a
// block per 4 rows (capped at 1024 in the backward), the step 1.7-2.9% (ssm-2m to 100m, bench/NOTES.md).
template <class Kernel>
int one_wave(Kernel* kernel, int threads, size_t shared) {
  int device = 0, sms = 0, per_sm = 0;
  BYTELM_CUDA_CHECK(cudaGetDevice(&device));
  BYTELM_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  BYTELM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, shared));
  return std::max(1, per_sm * sms);
}

// max_blocks caps the grid (one wave; the backward's partial rows); the shape depends on N, C, the pack and the
// device, so the summation order does too.
RowGroups row_groups(int N, int C, int n, int max_blocks) {
  RowGroups s;
  int packs = (C + n - 1) / n;
  s.row_threads = (packs + 31) / 32 * 32;
  if (s.row_threads > 1024)
    throw Error("layernorm on the GPU supports rows of at most " + std::to_string(1024 * n) + " elements, got " +
                std::to_string(C));
  s.lanes = s.row_threads >= kThreads ? 1 : kThreads / s.row_threads;
  int groups = (N + kRowsEach - 1) / kRowsEach;
  s.blocks = (groups + s.lanes - 1) / s.lanes;
  if (s.blocks > max_blocks) s.blocks = max_blocks;
  s.rows_each = (N + s.blocks * s.lanes - 1) / (s.blocks * s.lanes);
  return s;
}

// Sums each of v[0..K) over the thread's row group: warp sums, then (for groups of several warps) the warps in
// order through shared slots [K][32]. Every thread of the group gets the same sums. Call from uniform control
// flow: it synchronises the block when a row spans several warps.
template <int K>
__device__ void row_group_sum(float (&v)[K], float (*slots)[32], int warps_a_row) {
#pragma unroll
  for (int k = 0; k < K; k++) v[k] = warp_sum(v[k]);
  if (warps_a_row == 1) return;
  int warp = threadIdx.x / 32, first = warp / warps_a_row * warps_a_row;
  if (threadIdx.x % 32 == 0)
#pragma unroll
    for (int k = 0; k < K; k++) slots[k][warp] = v[k];
  __syncthreads();
#pragma unroll
  for (int k = 0; k < K; k++) {
    v[k] = 0.f;
    for (int i = 0; i < warps_a_row; i++) v[k] += slots[k][first + i];
  }
  __syncthreads();  // the slots are reused by the next row
}

// What a thread needs to walk its group's rows: its first column, its row group, and the rows of the walk.
struct RowWalk {
  int c0, group, lanes, warps_a_row;
  __device__ RowWalk(int row_threads, int n) {
    c0 = (threadIdx.x % row_threads) * n;
    group = threadIdx.x / row_threads;
    lanes = blockDim.x / row_threads;
    warps_a_row = row_threads / 32;
  }
  __device__ int row(int it) const { return (it * (int)gridDim.x + (int)blockIdx.x) * lanes + group; }
};

// Loads pack c0 of `row` of a [N, C] matrix; past N (or past C) the pack reads 0.
template <class T>
__device__ Pack<T> load_row_pack(const T* m, int row, int c0, int N, int C, bool vec) {
  bool live = row < N;
  return load_pack(m + (size_t)(live ? row : 0) * C, live ? c0 : C, C, vec);
}

// The forward's block size is at most kMaxThreads threads (a row group of up to 256 threads takes 256 a block); at
// 256, the register budget of four blocks an SM (64; the skip variant, which holds three rows' packs, three: 80).
template <int kMaxThreads, bool kSkip>
constexpr int kMinBlocks = kMaxThreads > 256 ? 1
                           : kSkip           ? 3
                                             : 4;

// The skip operands of skip_layernorm_forward: what is normalised is q = x + y + D z, stored (rounded to T) first.
template <class T>
struct SkipSum {
  T* q;
  const T* y;
  const T* z;
  const float* D;
};

template <class T, bool kSkip, int kMaxThreads>
__global__ void __launch_bounds__(kMaxThreads, (kMinBlocks<kMaxThreads, kSkip>))
    layernorm_forward_kernel(T* y, float* mean, float* rstd, const T* x, SkipSum<T> skip, const float* w,
                             const float* b, int N, int C, int row_threads, int rows_each, bool vec) {
  constexpr int n = Pack<T>::n;
  __shared__ float slots[1][32];
  RowWalk walk(row_threads, n);
  int c0 = walk.c0;
  float wl[n], bl[n], Dl[kSkip ? n : 1];
#pragma unroll
  for (int j = 0; j < n; j++) {
    bool real = c0 + j < C;
    wl[j] = real ? w[c0 + j] : 0.f, bl[j] = real ? b[c0 + j] : 0.f;
    if constexpr (kSkip) Dl[j] = real ? skip.D[c0 + j] : 0.f;
  }
  // x's packs of the next row, and of the one after without the skip: a thread keeps ~32-48 bytes in flight
  // (the skip's three inputs a row ahead; x alone, two rows ahead), which the bandwidth needs.
  constexpr int kAhead = kSkip ? 1 : 2;
  Pack<T> next[kAhead], next_y, next_z;
#pragma unroll
  for (int k = 0; k < kAhead; k++) next[k] = load_row_pack(x, walk.row(k), c0, N, C, vec);  // past N: zeros
  if constexpr (kSkip) {
    next_y = load_row_pack(skip.y, walk.row(0), c0, N, C, vec);
    next_z = load_row_pack(skip.z, walk.row(0), c0, N, C, vec);
  }
  for (int it = 0; it < rows_each; it++) {
    int row = walk.row(it);
    Pack<T> xp = next[0], yp = next_y, zp = next_z;
#pragma unroll
    for (int k = 0; k + 1 < kAhead; k++) next[k] = next[k + 1];
    if (it + kAhead < rows_each) next[kAhead - 1] = load_row_pack(x, walk.row(it + kAhead), c0, N, C, vec);
    if (kSkip && it + 1 < rows_each) {
      next_y = load_row_pack(skip.y, walk.row(it + 1), c0, N, C, vec);
      next_z = load_row_pack(skip.z, walk.row(it + 1), c0, N, C, vec);
    }
    if constexpr (kSkip) {  // xp becomes q as stored: the statistics are those of the rounded values
#pragma unroll
      for (int j = 0; j < n; j++) xp.set(j, xp.get(j) + yp.get(j) + Dl[j] * zp.get(j));  // past C: 0
      if (row < N && c0 < C) store_pack(skip.q + (size_t)row * C, c0, C, vec, xp);
    }
    float s[1] = {0.f};
#pragma unroll
    for (int j = 0; j < n; j++) s[0] += xp.get(j);  // columns past C read as 0
    row_group_sum(s, slots, walk.warps_a_row);
    float m = s[0] / C, v[1] = {0.f};  // two passes over the registers: no cancellation from E[x^2] - m^2
#pragma unroll
    for (int j = 0; j < n; j++) {
      float xc = c0 + j < C ? xp.get(j) - m : 0.f;
      v[0] += xc * xc;
    }
    row_group_sum(v, slots, walk.warps_a_row);
    float r = 1.f / sqrtf(v[0] / C + 1e-5f);
    if (row >= N) continue;
    if (c0 < C) {
      Pack<T> yp;
#pragma unroll
      for (int j = 0; j < n; j++) yp.set(j, (xp.get(j) - m) * r * wl[j] + bl[j]);  // past C: not stored
      store_pack(y + (size_t)row * C, c0, C, vec, yp);
    }
    if (c0 == 0) mean[row] = m, rstd[row] = r;
  }
}

// The skip operands of skip_sum_layernorm_backward: the LayerNorm's output z and the SSM's D. Its dy is dz + D g,
// g being the dx accumulated into (the gradient at q).
template <class T>
struct SkipGrad {
  const T* z;
  const float* D;
};

// dx (+)= rstd (g - mean(g) - xhat mean(g xhat)), g = dy w, and in the same pass the column sums of dy * xhat
// and dy (dw, db), and with kSkip of dx * z (dD), which each thread keeps for its columns in registers over its
// group's rows. The block then adds its groups in order into one partial row [kSums C], and the partial rows are
// added in block order afterwards. Blocks of up to 256 threads (rows of up to 256 packs; C = 512 in bf16 is 2 warps
// a row, 4 rows a block) load the accumulated dx (and z) a row ahead too, with x and dy, so that no row waits out a
// load: three blocks an SM (80 registers), two with the skip (109: its z, fp32 dy and dD sums would spill at 80).
// Blocks of up to 1024 threads (rows wider than 2048 in bf16) load them in place, within 64 registers (the skip
// variant spills ~150 bytes there).
template <class T, bool kSkip, int kMaxThreads>
__global__ void __launch_bounds__(kMaxThreads, kMaxThreads > 256 ? 0 : kSkip ? 2 : 3)  // 0: none (1 spills)
    layernorm_backward_kernel(T* dx, float* part, const T* dy, const T* x, SkipGrad<T> skip, const float* mean,
                              const float* rstd, const float* w, int N, int C, int row_threads, int rows_each,
                              bool accumulate_dx, bool vec) {
  constexpr int n = Pack<T>::n, kSums = kSkip ? 3 : 2;
  constexpr bool kAhead = kMaxThreads <= 256;
  __shared__ float slots[2][32];
  extern __shared__ float group_sums[];  // [lanes][kSums C]: the groups' column sums, added in order at the end
  RowWalk walk(row_threads, n);
  int c0 = walk.c0;
  float s_gx[n] = {}, s_g[n] = {}, s_gz[kSkip ? n : 1] = {};  // w and D are read where used (L1): registers
  const float* wc = w + (c0 < C ? c0 : 0);                     // for them would spill at the bound
  const float* Dc = kSkip ? skip.D + (c0 < C ? c0 : 0) : nullptr;
  // what a row needs besides x and dy: dx where it is accumulated into, z with the skip
  auto load_extra = [&](int row, Pack<T>& acc, Pack<T>& zp) {
    if (accumulate_dx) acc = load_row_pack((const T*)dx, row, c0, N, C, vec);
    if constexpr (kSkip) zp = load_row_pack(skip.z, row, c0, N, C, vec);
  };
  Pack<T> next_x = load_row_pack(x, walk.row(0), c0, N, C, vec);
  Pack<T> next_dy = load_row_pack(dy, walk.row(0), c0, N, C, vec), next_acc, next_z;
  if constexpr (kAhead) load_extra(walk.row(0), next_acc, next_z);
  for (int it = 0; it < rows_each; it++) {
    int row = walk.row(it);
    Pack<T> xp = next_x, dyp = next_dy, acc = next_acc, zp = next_z;
    if (it + 1 < rows_each) {
      next_x = load_row_pack(x, walk.row(it + 1), c0, N, C, vec);
      next_dy = load_row_pack(dy, walk.row(it + 1), c0, N, C, vec);
      if constexpr (kAhead) load_extra(walk.row(it + 1), next_acc, next_z);
    }
    if constexpr (!kAhead) load_extra(row, acc, zp);
    float skip_dy[kSkip ? n : 1];  // with the skip, dy is dz + D g, kept in fp32 (not rounded to T)
    if constexpr (kSkip) {
#pragma unroll
      for (int j = 0; j < n; j++) {  // zero packs (past C or past N) stay zero
        float gq = acc.get(j);
        s_gz[j] += gq * zp.get(j);
        skip_dy[j] = dyp.get(j) + (c0 + j < C ? Dc[j] : 0.f) * gq;
      }
    }
    auto dy_at = [&](int j) {
      if constexpr (kSkip) return skip_dy[j];
      else return dyp.get(j);
    };
    bool live = row < N;
    float m = live ? mean[row] : 0.f, r = live ? rstd[row] : 0.f, sums[2] = {0.f, 0.f};  // g, g xhat
#pragma unroll
    for (int j = 0; j < n; j++) {  // zero packs (past C or past N) add nothing
      float gy = dy_at(j), xhat = (xp.get(j) - m) * r, g = c0 + j < C ? gy * wc[j] : 0.f;
      sums[0] += g;
      sums[1] += g * xhat;
      s_gx[j] += gy * xhat;
      s_g[j] += gy;
    }
    row_group_sum(sums, slots, walk.warps_a_row);
    if (!live || c0 >= C) continue;
    float mean_g = sums[0] / C, mean_gx = sums[1] / C;
    Pack<T> out;
#pragma unroll
    for (int j = 0; j < n; j++) {
      float xhat = (xp.get(j) - m) * r;
      float v = r * (dy_at(j) * wc[c0 + j < C ? j : 0] - mean_g - xhat * mean_gx);  // past C: not stored
      out.set(j, accumulate_dx ? v + acc.get(j) : v);
    }
    store_pack(dx + (size_t)row * C, c0, C, vec, out);
  }
  float* mine = group_sums + (size_t)walk.group * kSums * C;
#pragma unroll
  for (int j = 0; j < n; j++)
    if (c0 + j < C) {
      mine[c0 + j] = s_gx[j], mine[C + c0 + j] = s_g[j];
      if constexpr (kSkip) mine[2 * C + c0 + j] = s_gz[j];
    }
  __syncthreads();
  for (int c = threadIdx.x; c < kSums * C; c += blockDim.x) {
    float total = 0.f;
    for (int g = 0; g < walk.lanes; g++) total += group_sums[(size_t)g * kSums * C + c];
    part[(size_t)blockIdx.x * kSums * C + c] = total;
  }
}

template <class A, bool kSkip>
void launch_layernorm_forward(A* y, float* mean, float* rstd, const A* x, SkipSum<A> skip, const float* w,
                              const float* b, int N, int C, bool vec, cudaStream_t stream) {
  if (N == 0) return;
  RowGroups s = row_groups(N, C, Pack<A>::n, 1 << 30);
  int threads = s.row_threads * s.lanes;
  auto kernel = threads <= 256 ? layernorm_forward_kernel<A, kSkip, 256> : layernorm_forward_kernel<A, kSkip, 1024>;
  s = row_groups(N, C, Pack<A>::n, one_wave(kernel, threads, 0));
  kernel<<<s.blocks, threads, 0, stream>>>(y, mean, rstd, x, skip, w, b, N, C, s.row_threads, s.rows_each, vec);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A, bool kSkip>
void launch_layernorm_backward(A* dx, float* dw, float* db, float* dD, const A* dy, const A* x, SkipGrad<A> skip,
                               const float* mean, const float* rstd, const float* w, int N, int C, bool accumulate_dx,
                               bool vec, float* partials, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  constexpr int kSums = kSkip ? 3 : 2;
  RowGroups s = row_groups(N, C, Pack<A>::n, kMaxSumBlocks);
  size_t shared = (size_t)s.lanes * kSums * C * sizeof(float);
  int threads = s.row_threads * s.lanes;
  auto kernel = threads <= 256 ? layernorm_backward_kernel<A, kSkip, 256> : layernorm_backward_kernel<A, kSkip, 1024>;
  if (shared > kMaxSmem)
    throw Error("layernorm on the GPU: the backward of rows of " + std::to_string(C) +
                " elements needs more shared memory than a block has");
  if (shared > 48 * 1024) allow_smem(kernel, shared);
  s = row_groups(N, C, Pack<A>::n, std::min(kMaxSumBlocks, one_wave(kernel, threads, shared)));
  kernel<<<s.blocks, threads, shared, stream>>>(dx, partials, dy, x, skip, mean, rstd, w, N, C, s.row_threads,
                                                s.rows_each, accumulate_dx, vec);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  add_partial_sums<float>({{dw, C, 0}, {db, C, C}, {dD, kSkip ? C : 0, 2 * C}}, partials, s.blocks, kSums * C, stream);
}

}  // namespace

template <class A>
void layernorm_forward_cuda(A* y, float* mean, float* rstd, const A* x, const float* w, const float* b, int N, int C,
                            cudaStream_t stream) {
  launch_layernorm_forward<A, false>(y, mean, rstd, x, SkipSum<A>{}, w, b, N, C, packable(y, C) && packable(x, C),
                                     stream);
}

template <class A>
void skip_layernorm_forward_cuda(A* q, A* out, float* mean, float* rstd, const A* x, const A* y, const A* z,
                                 const float* D, const float* w, const float* b, int N, int C, cudaStream_t stream) {
  bool vec = packable(q, C) && packable(out, C) && packable(x, C) && packable(y, C) && packable(z, C);
  launch_layernorm_forward<A, true>(out, mean, rstd, x, SkipSum<A>{q, y, z, D}, w, b, N, C, vec, stream);
}

// Enough for any pack width (a block takes at least kRowsEach rows) and for the skip variant's three sums.
size_t layernorm_backward_cuda_partials(int N, int C) {
  size_t blocks = (N + kRowsEach - 1) / kRowsEach;
  return (blocks < kMaxSumBlocks ? blocks : kMaxSumBlocks) * 3 * (size_t)C;
}

template <class A>
void layernorm_backward_cuda(A* dx, float* dw, float* db, const A* dy, const A* x, const float* mean,
                             const float* rstd, const float* w, int N, int C, bool accumulate_dx, float* partials,
                             cudaStream_t stream) {
  launch_layernorm_backward<A, false>(dx, dw, db, nullptr, dy, x, SkipGrad<A>{}, mean, rstd, w, N, C, accumulate_dx,
                                      packable(dx, C) && packable(dy, C) && packable(x, C), partials, stream);
}

template <class A>
void skip_sum_layernorm_backward_cuda(A* dx, float* dw, float* db, float* dD, const A* dz, const A* x, const A* z,
                                      const float* D, const float* mean, const float* rstd, const float* w, int N,
                                      int C, float* partials, cudaStream_t stream) {
  bool vec = packable(dx, C) && packable(dz, C) && packable(x, C) && packable(z, C);
  launch_layernorm_backward<A, true>(dx, dw, db, dD, dz, x, SkipGrad<A>{z, D}, mean, rstd, w, N, C, true, vec,
                                     partials, stream);
}

#define BYTELM_INSTANTIATE(A)                                                                                      \
  template void layernorm_forward_cuda<A>(A*, float*, float*, const A*, const float*, const float*, int, int,      \
                                          cudaStream_t);                                                           \
  template void skip_layernorm_forward_cuda<A>(A*, A*, float*, float*, const A*, const A*, const A*, const float*, \
                                               const float*, const float*, int, int, cudaStream_t);                \
  template void layernorm_backward_cuda<A>(A*, float*, float*, const A*, const A*, const float*, const float*,     \
                                           const float*, int, int, bool, float*, cudaStream_t);                    \
  template void skip_sum_layernorm_backward_cuda<A>(A*, float*, float*, float*, const A*, const A*, const A*,       \
                                                    const float*, const float*, const float*, const float*, int, int, \
                                                    float*, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
