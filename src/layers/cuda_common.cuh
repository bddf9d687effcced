// Device helpers shared by the layer kernels (include from .cu files only).
// Storage type T is a template parameter everywhere; arithmetic and every
// accumulation are fp32. Nothing here uses atomics: reductions have one owner
// per output and a fixed summation order, so results are bit-reproducible.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "core/bf16.h"
#include "core/cuda_check.h"
#include "core/error.h"

namespace bytelm::cuda {

constexpr int kThreads = 256;  // default block size of the elementwise kernels

inline unsigned blocks_for(size_t n, int threads = kThreads) { return (unsigned)((n + threads - 1) / threads); }

__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);  // every lane ends with the same sum
  return v;
}

__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// 16 bytes of T (4 floats or 8 bf16) moved by one load or store instruction: wide accesses keep the
// memory system busy with a quarter (an eighth) of the instructions, and read a row before any of it is
// written (a bf16 read-modify-write element by element stalls on the line it just stored to).
template <class T>
struct Pack {
  static constexpr int n = 16 / sizeof(T);
  uint4 raw;
  __device__ float get(int j) const { return (float)reinterpret_cast<const T*>(&raw)[j]; }
  __device__ void set(int j, float v) { reinterpret_cast<T*>(&raw)[j] = (T)v; }
};

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// True when rows of C elements starting at p can be moved in packs (C a multiple of the pack, p aligned).
template <class T>
inline bool packable(const T* p, int C) {
  return C % Pack<T>::n == 0 && aligned16(p);
}

// Elements [c0, c0 + n) of a row of C; past C reads 0 and writes nothing. `vec`: the row is packable.
template <class T>
__device__ inline Pack<T> load_pack(const T* row, int c0, int C, bool vec) {
  Pack<T> p;
  if (vec && c0 < C) {
    p.raw = *reinterpret_cast<const uint4*>(row + c0);
  } else {
#pragma unroll
    for (int j = 0; j < Pack<T>::n; j++) p.set(j, c0 + j < C ? (float)row[c0 + j] : 0.f);
  }
  return p;
}

template <class T>
__device__ inline void store_pack(T* row, int c0, int C, bool vec, const Pack<T>& p) {
  if (vec && c0 < C) {
    *reinterpret_cast<uint4*>(row + c0) = p.raw;
  } else {
#pragma unroll
    for (int j = 0; j < Pack<T>::n; j++)
      if (c0 + j < C) row[c0 + j] = reinterpret_cast<const T*>(&p.raw)[j];
  }
}

// 16 bytes from global to shared memory by cp.async: the copy runs on while the threads compute, and
// cp_async_wait<N> (this thread's groups) then a barrier (the others') make it visible. Zero-filled where !valid;
// src must be a valid address even then. Both addresses 16-byte aligned.
__device__ inline void cp_async16(void* dst, const void* src, bool valid) {
  unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0));
}
__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most N of this thread's committed copy groups are still in flight.
template <int N>
__device__ inline void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Raises a kernel's dynamic shared memory limit past the default 48 KB (host side; call once per kernel).
template <class Kernel>
inline void allow_smem(Kernel* kernel, size_t bytes) {
  BYTELM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

// partials[blockIdx.x] = sum over this block's grid-stride share of x[i] (or x[i]^2 when kSquare): each thread
// takes packs of 4 floats (16-byte loads where x is aligned; the last pack partial), in index order, warps by
// shuffles, then the warps in order: the order depends on n and the grid alone. The unrolled loop keeps several
// loads in flight per thread (one float a thread, one at a time, reached half the bandwidth over 100M gradients).
template <bool kSquare>
__global__ void sum_partials_kernel(float* partials, const float* x, size_t n) {
  __shared__ float warp_sums[32];
  constexpr int P = Pack<float>::n;
  bool vec = reinterpret_cast<uintptr_t>(x) % 16 == 0;
  size_t packs = (n + P - 1) / P;
  float s = 0.f;
#pragma unroll 4
  for (size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x; k < packs; k += (size_t)gridDim.x * blockDim.x) {
    int len = n - k * P < (size_t)P ? (int)(n - k * P) : P;
    Pack<float> p = load_pack(x + k * P, 0, len, vec && len == P);
#pragma unroll
    for (int j = 0; j < P; j++) s += kSquare ? p.get(j) * p.get(j) : p.get(j);  // past n: zeros
  }
  s = warp_sum(s);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0.f;
    for (int w = 0; w < (int)blockDim.x / 32; w++) t += warp_sums[w];
    partials[blockIdx.x] = t;
  }
}

// Launch shape of the kernels that give a thread to each pack of a row's d columns: threadIdx.x walks the packs of
// a row (up to kThreads of them; wider rows take column blocks, blockIdx.y), threadIdx.y the rows of a block, so that
// a block holds ~kThreads threads however narrow the rows. (A block a row, 32 threads at d = 256 in bf16, left the
// SMs waiting on block scheduling: the embedding's 67 MB took 82 us a step at ssm-2m on the H100, 25% of bandwidth.)
struct RowPacks {
  dim3 grid, block;
};
template <class T>
inline RowPacks row_packs(size_t rows, int d) {
  int packs = (d + Pack<T>::n - 1) / Pack<T>::n;
  int threads = (packs + 31) / 32 * 32;
  if (threads > kThreads) threads = kThreads;
  int rows_a_block = kThreads / threads;
  return {dim3((unsigned)((rows + rows_a_block - 1) / rows_a_block), (unsigned)((packs + threads - 1) / threads)),
          dim3((unsigned)threads, (unsigned)rows_a_block)};
}
// This thread's row in a row_packs launch (the last block's may be past the last row: check), and the first column
// of its pack.
__device__ inline int pack_row() { return blockIdx.x * blockDim.y + threadIdx.y; }
__device__ inline int pack_column(int n) { return (blockIdx.y * blockDim.x + threadIdx.x) * n; }

// One output of add_partial_sums: out[c] += the sum over the partial rows of their column offset + c, c < n.
template <class T>
struct PartialSum {
  T* out;
  int n, offset;  // offset < the partial rows' stride
};
constexpr int kMaxPartialSums = 4;  // outputs one launch takes
template <class T>
struct PartialSums {
  PartialSum<T> sum[kMaxPartialSums];
};

// out[c] += sum over g < G of part[g * stride + offset + c], c < n, for output blockIdx.y, in a fixed order:
// thread (column c, lane y) sums g = y, y + kSumLanes, ... in increasing g, then lane 0 adds the kSumLanes sums in
// lane order. The lanes and the unrolled loop keep many loads in flight (one thread a column would wait on each
// load in turn; with 8 lanes, 1024 partial rows of 1024 columns took 9 us on an H100, latency-bound in a grid of
// 32 blocks), and the outputs of a call (a LayerNorm's dw and db, say) share one launch, each a grid row.
constexpr int kSumCols = 32, kSumLanes = 32;

template <class T>
__global__ void __launch_bounds__(kSumCols * kSumLanes)
    add_partial_sums_kernel(PartialSums<T> outs, const float* part, int G, int stride) {
  __shared__ float sums[kSumLanes][kSumCols];
  const PartialSum<T> o = outs.sum[blockIdx.y];
  int x = threadIdx.x % kSumCols, y = threadIdx.x / kSumCols, c = blockIdx.x * kSumCols + x;
  float s = 0.f;
  if (c < o.n) {
    const float* col = part + o.offset + c;
#pragma unroll 8
    for (int g = y; g < G; g += kSumLanes) s += col[(size_t)g * stride];
  }
  sums[y][x] = s;
  __syncthreads();
  if (y == 0 && c < o.n) {
    float t = 0.f;
    for (int j = 0; j < kSumLanes; j++) t += sums[j][x];
    o.out[c] = (T)((float)o.out[c] + t);
  }
}

// Each output's columns of G partial rows of `stride` floats, added into it (see the kernel), in one launch.
template <class T>
void add_partial_sums(std::initializer_list<PartialSum<T>> outputs, const float* part, int G, int stride,
                      cudaStream_t stream) {
  PartialSums<T> outs{};
  int count = 0, widest = 0;
  for (const PartialSum<T>& o : outputs) {
    if (o.n <= 0) continue;
    if (count == kMaxPartialSums) throw Error("add_partial_sums: more outputs than one launch takes");
    outs.sum[count++] = o;
    widest = o.n > widest ? o.n : widest;
  }
  if (count == 0) return;
  dim3 grid((widest + kSumCols - 1) / kSumCols, count);
  add_partial_sums_kernel<<<grid, kSumCols * kSumLanes, 0, stream>>>(outs, part, G, stride);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void add_partial_sums(T* out, const float* part, int G, int n, int stride, cudaStream_t stream) {
  add_partial_sums<T>({{out, n, 0}}, part, G, stride, stream);
}

}  // namespace bytelm::cuda
