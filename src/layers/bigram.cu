// The bigram embedding on the GPU. Forward: a thread per output element gathers its table row's entry. Backward:
// keys (buckets) and values (positions) -> cub's stable radix sort -> each bucket's first sorted index by a
// binary search -> a block a bucket: its warps take the bucket's positions in turn (warp w the w-th, w+8-th, ...),
// lanes over the row's columns, and warp 0 adds the warps' sums in warp order to the gradient.
#include <cub/device/device_radix_sort.cuh>

#include "core/bf16.h"
#include "layers/bigram.h"
#include "layers/bigram_cuda.h"
#include "layers/cuda_common.cuh"
#include "layers/elementwise.cuh"

namespace bytelm {

using namespace cuda;

namespace {

constexpr int kWarps = 8;  // an owner block's warps

template <class T>
struct BigramGather {
  T* e;
  const uint8_t *x, *prev;
  const float* table;
  int T_, buckets, dim;
  __device__ void operator()(size_t i) const {
    size_t row = i / dim;
    int col = (int)(i % dim), b = (int)(row / T_), t = (int)(row % T_);
    e[i] = (T)table[(size_t)bigram_bucket_at(x, b, t, T_, buckets, prev) * dim + col];
  }
};

struct BucketKeys {
  int *keys, *positions;
  const uint8_t* x;
  int T_, buckets;
  __device__ void operator()(size_t i) const {
    int b = (int)(i / T_), t = (int)(i % T_);
    keys[i] = bigram_bucket_at(x, b, t, T_, buckets, nullptr);
    positions[i] = (int)i;
  }
};

// start[u] = the first index of the sorted keys holding a bucket >= u, for u = 0..buckets.
struct BucketStarts {
  int* start;
  const int* sorted;
  int n;
  __device__ void operator()(size_t i) const {
    int u = (int)i, lo = 0, hi = n;
    while (lo < hi) {
      int mid = (lo + hi) / 2;
      if (sorted[mid] < u)
        lo = mid + 1;
      else
        hi = mid;
    }
    start[u] = lo;
  }
};

template <class T>
__global__ void __launch_bounds__(kWarps * 32)
    bigram_owner_kernel(float* dtable, const T* de, const int* positions, const int* start, int dim) {
  __shared__ float sums[kWarps][32];
  int u = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32, first = start[u], end = start[u + 1];
  if (first == end) return;
  for (int c0 = 0; c0 < dim; c0 += 32) {
    int c = c0 + lane;
    float s = 0.f;
    if (c < dim)
      for (int j = first + warp; j < end; j += kWarps) s += (float)de[(size_t)positions[j] * dim + c];
    sums[warp][lane] = s;
    __syncthreads();
    if (warp == 0 && c < dim) {
      float total = 0.f;
      for (int w = 0; w < kWarps; w++) total += sums[w][lane];
      dtable[(size_t)u * dim + c] += total;
    }
    __syncthreads();
  }
}

int key_bits(int buckets) {
  int bits = 1;
  while ((1 << bits) < buckets) bits++;
  return bits;
}

size_t round256(size_t bytes) { return (bytes + 255) / 256 * 256; }

size_t sort_bytes(int n, int buckets) {
  size_t bytes = 0;
  BYTELM_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, (const int*)nullptr, (int*)nullptr,
                                                    (const int*)nullptr, (int*)nullptr, n, 0, key_bits(buckets)));
  return bytes;
}

}  // namespace

template <class A>
void bigram_forward_cuda(A* e, const uint8_t* x, const float* table, int B, int T_, int buckets, int dim,
                         const uint8_t* prev, cudaStream_t stream) {
  elementwise_cuda((size_t)B * T_ * dim, BigramGather<A>{e, x, prev, table, T_, buckets, dim}, stream);
}

// keys, positions, their sorted copies [n] each, the starts [buckets + 1], cub's scratch.
size_t bigram_backward_cuda_workspace_bytes(int B, int T_, int buckets) {
  int n = B * T_;
  return 4 * round256(n * sizeof(int)) + round256((buckets + 1) * sizeof(int)) + sort_bytes(n, buckets);
}

template <class A>
void bigram_backward_cuda(float* dtable, const A* de, const uint8_t* x, int B, int T_, int buckets, int dim,
                          void* workspace, cudaStream_t stream) {
  int n = B * T_;
  if (n == 0 || dim == 0) return;
  char* p = (char*)workspace;
  auto take = [&](size_t bytes) {
    char* front = p;
    p += round256(bytes);
    return front;
  };
  int *keys = (int*)take(n * sizeof(int)), *positions = (int*)take(n * sizeof(int)),
      *sorted_keys = (int*)take(n * sizeof(int)), *sorted_positions = (int*)take(n * sizeof(int)),
      *start = (int*)take((buckets + 1) * sizeof(int));
  size_t scratch = sort_bytes(n, buckets);
  elementwise_cuda(n, BucketKeys{keys, positions, x, T_, buckets}, stream);
  BYTELM_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(p, scratch, keys, sorted_keys, positions, sorted_positions, n, 0,
                                                    key_bits(buckets), stream));
  elementwise_cuda((size_t)buckets + 1, BucketStarts{start, sorted_keys, n}, stream);
  bigram_owner_kernel<<<buckets, kWarps * 32, 0, stream>>>(dtable, de, sorted_positions, start, dim);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

#define BYTELM_INSTANTIATE(A)                                                                                \
  template void bigram_forward_cuda<A>(A*, const uint8_t*, const float*, int, int, int, int, const uint8_t*, \
                                       cudaStream_t);                                                        \
  template void bigram_backward_cuda<A>(float*, const A*, const uint8_t*, int, int, int, int, void*, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
