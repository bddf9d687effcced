// What the single-kernel benchmarks (bench_attention, bench_gemm) share, CUDA builds only: random device inputs and
// the median time of a call by device events.
#pragma once
#ifdef BYTELM_WITH_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "core/bf16.h"
#include "core/cuda_check.h"
#include "core/device_buffer.h"
#include "core/rng.h"

namespace bytelm {

// n bf16 values uniform in [-2, 2): random data, never zeros (which can time faster than real inputs).
inline DeviceBuffer<bf16> random_bf16_device(size_t n, Rng& rng) {
  std::vector<bf16> h(n);
  for (bf16& x : h) x = __float2bfloat16(float((rng.next_u64() >> 40) * 0x1p-22 - 2.0));
  DeviceBuffer<bf16> d;
  d.assign_zero(n);
  BYTELM_CUDA_CHECK(cudaMemcpy(d.data(), h.data(), sizeof(bf16) * n, cudaMemcpyHostToDevice));
  return d;
}

// Milliseconds of call() on stream: `warmup` untimed calls, then the median of `iters`, each between two events.
template <class Call>
double median_ms(cudaStream_t stream, int warmup, int iters, Call&& call) {
  cudaEvent_t start, stop;
  BYTELM_CUDA_CHECK(cudaEventCreate(&start));
  BYTELM_CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < warmup; i++) call();
  std::vector<float> ms(iters);
  for (float& m : ms) {
    BYTELM_CUDA_CHECK(cudaEventRecord(start, stream));
    call();
    BYTELM_CUDA_CHECK(cudaEventRecord(stop, stream));
    BYTELM_CUDA_CHECK(cudaEventSynchronize(stop));
    BYTELM_CUDA_CHECK(cudaEventElapsedTime(&m, start, stop));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return (double)ms[ms.size() / 2];
}

}  // namespace bytelm
#endif
