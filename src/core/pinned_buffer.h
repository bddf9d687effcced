// An owning array in page-locked host memory (CUDA builds only). Copies between it and the device
// can be recorded in a CUDA graph and replayed (a graph cannot stage pageable memory), and they
// never make the host wait for the stream.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "core/cuda_check.h"

namespace bytelm {

template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t n) { resize(n); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() { cudaFreeHost(p_); }

  // Grows to at least n elements (contents are lost when it grows; the address changes then).
  void resize(size_t n) {
    if (n <= n_) return;
    BYTELM_CUDA_CHECK(cudaFreeHost(p_));
    p_ = nullptr;
    n_ = 0;
    BYTELM_CUDA_CHECK(cudaMallocHost(&p_, n * sizeof(T)));
    n_ = n;
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// True while `stream` is being captured into a CUDA graph: work is recorded, not run, so nothing may wait for it.
inline bool stream_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  BYTELM_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

}  // namespace bytelm
