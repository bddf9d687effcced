// An owning, zero-initialised array in GPU memory (CUDA builds only).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>

#include "core/cuda_check.h"

namespace bytelm {

// Bytes held by all DeviceBuffers now, and the most ever held (for benchmarks).
inline size_t& device_bytes_in_use() {
  static size_t n = 0;
  return n;
}
inline size_t& device_bytes_peak() {
  static size_t n = 0;
  return n;
}
// Allocations made by DeviceBuffers so far: a captured CUDA graph holds device addresses, so whoever
// replays one checks this has not moved since the capture.
inline size_t& device_allocations() {
  static size_t n = 0;
  return n;
}

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~DeviceBuffer() {
    cudaFree(p_);
    device_bytes_in_use() -= n_ * sizeof(T);
  }

  // Reallocates to n elements, all zero (cudaMalloc synchronises: plan sizes up front, not per step). The
  // zeroing runs on the legacy default stream, which the models' non-blocking streams do not wait for, so
  // it is waited for here: otherwise a kernel queued right after could write first and be zeroed over
  // (seen on an H100: the first forward at batch 32 x 2048 gave other losses than every later one).
  void assign_zero(size_t n) {
    BYTELM_CUDA_CHECK(cudaFree(p_));
    device_bytes_in_use() -= n_ * sizeof(T);
    p_ = nullptr;
    n_ = 0;
    if (n == 0) return;
    cudaError_t err = cudaMalloc(&p_, n * sizeof(T));
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear the sticky error
      throw Error("out of GPU memory allocating " + std::to_string(n * sizeof(T) >> 20) +
                  " MiB (try a smaller --batch, --seq or model)");
    }
    BYTELM_CUDA_CHECK(err);
    n_ = n;
    device_allocations()++;
    device_bytes_in_use() += n * sizeof(T);
    device_bytes_peak() = std::max(device_bytes_peak(), device_bytes_in_use());
    BYTELM_CUDA_CHECK(cudaMemset(p_, 0, n * sizeof(T)));
    BYTELM_CUDA_CHECK(cudaDeviceSynchronize());
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace bytelm
