// The GPU backend of the model compositions (CUDA builds only): device
// buffers and the CUDA layer kernels, under the same method names as CpuOps.
// Everything is queued on one stream; only mean_loss and download wait for it.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "core/device_buffer.h"
#include "core/op_profile.h"
#include "layers/cross_entropy_cuda.h"
#include "layers/diag_ssm_cuda.h"
#include "layers/embedding_cuda.h"
#include "layers/layernorm_cuda.h"
#include "layers/linear_cuda.h"
#include "layers/patch_cuda.h"
#include "layers/swiglu_cuda.h"

namespace bytelm {

// How the matrix products run (storage and accumulation stay fp32): true fp32 (the parity tests),
// TF32 inputs or bf16 inputs on the tensor cores (the fast paths).
enum class GemmPrecision { fp32, tf32, bf16 };

// y += x over n elements (models/cuda_ops.cu).
template <class T>
void add_inplace_cuda(T* y, const T* x, size_t n, cudaStream_t stream);

class CudaOps {
 public:
  static constexpr bool on_host = false;
  template <class T>
  using Buffer = DeviceBuffer<T>;
  template <class T>
  static void resize(Buffer<T>& b, size_t n) {
    b.assign_zero(n);
  }
  static int hidden_stride(int H) { return swiglu_stride_cuda(H); }  // padded: see swiglu_cuda.h

  explicit CudaOps(GemmPrecision precision);
  ~CudaOps();
  CudaOps(const CudaOps&) = delete;
  CudaOps& operator=(const CudaOps&) = delete;
  cudaStream_t stream() const { return stream_; }

  template <class T>
  void upload(Buffer<T>& dst, const std::vector<T>& src) {
    if (dst.size() != src.size()) dst.assign_zero(src.size());
    BYTELM_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.size() * sizeof(T), cudaMemcpyHostToDevice, stream_));
    BYTELM_CUDA_CHECK(cudaStreamSynchronize(stream_));  // src may go away after this call
  }
  template <class T>
  void download(std::vector<T>& dst, const Buffer<T>& src) {
    dst.resize(src.size());
    BYTELM_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.size() * sizeof(T), cudaMemcpyDeviceToHost, stream_));
    BYTELM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  const uint8_t* put_bytes(Buffer<uint8_t>& dst, const uint8_t* src, size_t n) {
    OpScope scope_("put_bytes");
    if (dst.size() < n) dst.assign_zero(n);
    BYTELM_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src, n, cudaMemcpyHostToDevice, stream_));
    return dst.data();
  }
  template <class T>
  void add(T* y, const T* x, size_t n) {
    OpScope scope_("add");
    add_inplace_cuda(y, x, n, stream_);
  }
  template <class T>
  void zero(T* p, size_t n) {
    OpScope scope_("zero");
    BYTELM_CUDA_CHECK(cudaMemsetAsync(p, 0, n * sizeof(T), stream_));
  }
  // Waits for the stream: the mean (summed on the host in the CPU's order) and, if asked, every row's loss.
  template <class T>
  T mean_loss(const T* loss, int N, T* row_loss) {
    OpScope scope_("mean_loss");
    std::vector<T> host(N);
    BYTELM_CUDA_CHECK(cudaMemcpyAsync(host.data(), loss, N * sizeof(T), cudaMemcpyDeviceToHost, stream_));
    BYTELM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    T total = 0;
    for (int i = 0; i < N; i++) total += host[i];
    if (row_loss) std::copy(host.begin(), host.end(), row_loss);
    return total / N;
  }

  template <class T>
  void embedding_forward(T* e, const uint8_t* x, const T* E, int N, int d) {
    OpScope scope_("embedding_forward");
    embedding_forward_cuda(e, x, E, N, d, stream_);
  }
  template <class T>
  void embedding_backward(T* dE, const T* de, const uint8_t* x, int N, int d) {
    OpScope scope_("embedding_backward");
    embedding_backward_cuda(dE, de, x, N, d, stream_);
  }
  template <class T>
  void patch_mean_forward(T* p, const T* e, int B, int T_, int P, int d) {
    OpScope scope_("patch_mean_forward");
    patch_mean_forward_cuda(p, e, B, T_, P, d, stream_);
  }
  template <class T>
  void patch_mean_backward(T* de, const T* dp, int B, int T_, int P, int d) {
    OpScope scope_("patch_mean_backward");
    patch_mean_backward_cuda(de, dp, B, T_, P, d, stream_);
  }
  template <class T>
  void patch_broadcast_forward(T* out, const T* p, const T* start, const T* e, int B, int T_, int P, int d) {
    OpScope scope_("patch_broadcast_forward");
    patch_broadcast_forward_cuda(out, p, start, e, B, T_, P, d, stream_);
  }
  template <class T>
  void patch_broadcast_backward(T* dp, T* dstart, T* de, const T* dout, int B, int T_, int P, int d) {
    OpScope scope_("patch_broadcast_backward");
    patch_broadcast_backward_cuda(dp, dstart, de, dout, B, T_, P, d, stream_);
  }
  template <class T>
  void layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int N, int C) {
    OpScope scope_("layernorm_forward");
    layernorm_forward_cuda(y, mean, rstd, x, w, b, N, C, stream_);
  }
  template <class T>
  void layernorm_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* mean, const T* rstd, const T* w, int N,
                          int C, bool accumulate_dx) {
    OpScope scope_("layernorm_backward");
    layernorm_backward_cuda(dx, dw, db, dy, x, mean, rstd, w, N, C, accumulate_dx,
                            partials(layernorm_backward_cuda_partials(N, C)), stream_);
  }
  template <class T>
  void diag_ssm_forward(T* y, T* u, T* h, const T* x, DiagSsmWeights<T> w, int B, int T_, int d, const T* h0) {
    OpScope scope_("diag_ssm_forward");
    diag_ssm_forward_cuda(y, u, h, x, w, B, T_, d, h0, gemm_, stream_);
  }
  template <class T>
  void diag_ssm_backward(T* dx, DiagSsmGrads<T> g, const T* dy, const T* x, const T* u, const T* h, DiagSsmWeights<T> w,
                         int B, int T_, int d, T* scratch) {
    OpScope scope_("diag_ssm_backward");
    diag_ssm_backward_cuda(dx, g, dy, x, u, h, w, B, T_, d, scratch,
                           partials(diag_ssm_backward_cuda_partials(B, T_, d)), gemm_, stream_);
  }
  template <class T>
  void swiglu_forward(T* y, T* g, T* m, const T* x, const T* W12, const T* W3, int N, int d, int H) {
    OpScope scope_("swiglu_forward");
    swiglu_forward_cuda(y, g, m, x, W12, W3, N, d, H, (T*)workspace(swiglu_workspace_cuda(d, H)), gemm_, stream_);
  }
  template <class T>
  void swiglu_backward(T* dx, T* dW12, T* dW3, const T* dy, const T* x, const T* g, const T* m, const T* W12,
                       const T* W3, int N, int d, int H, T* scratch) {
    OpScope scope_("swiglu_backward");
    swiglu_backward_cuda(dx, dW12, dW3, dy, x, g, m, W12, W3, N, d, H, scratch,
                         (T*)workspace(swiglu_workspace_cuda(d, H)), gemm_, stream_);
  }
  template <class T>
  void linear_forward(T* y, const T* x, const T* W, int N, int in, int out) {
    OpScope scope_("linear_forward");
    linear_forward_cuda(y, x, W, N, in, out, gemm_, stream_);
  }
  template <class T>
  void linear_backward(T* dx, T* dW, const T* dy, const T* x, const T* W, int N, int in, int out, bool accumulate_dx) {
    OpScope scope_("linear_backward");
    linear_backward_cuda(dx, dW, dy, x, W, N, in, out, accumulate_dx, gemm_, stream_);
  }
  template <class T>
  void cross_entropy(T* loss, T* dlogits, const T* logits, const uint8_t* y, int N, T scale) {
    OpScope scope_("cross_entropy");
    cross_entropy_forward_backward_cuda(loss, dlogits, logits, y, N, scale, stream_);
  }

 private:
  // Scratch for the deterministic reductions; grows to the largest request (sizes settle after the first step).
  float* partials(size_t n) {
    if (partials_.size() < n) partials_.assign_zero(n);
    return partials_.data();
  }
  float* workspace(size_t n) {
    if (workspace_.size() < n) workspace_.assign_zero(n);
    return workspace_.data();
  }
  cudaStream_t stream_ = nullptr;
  Gemm gemm_;
  DeviceBuffer<float> partials_, workspace_;
};

}  // namespace bytelm
