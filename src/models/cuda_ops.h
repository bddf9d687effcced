// The GPU backend of the model compositions (CUDA builds only): device
// buffers and the CUDA layer kernels, under the same method names as CpuOps.
// Everything is queued on one stream; only mean_loss and download wait for it.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <type_traits>
#include <vector>

#include "core/device_buffer.h"
#include "core/error.h"
#include "core/op_profile.h"
#include "core/pinned_buffer.h"
#include "layers/attention_cuda.h"
#include "layers/bigram_cuda.h"
#include "layers/causal_conv_cuda.h"
#include "layers/cross_entropy_cuda.h"
#include "layers/diag_ssm_cuda.h"
#include "layers/embedding_cuda.h"
#include "layers/layernorm_cuda.h"
#include "layers/linear_cuda.h"
#include "layers/mlp_cuda.h"
#include "layers/patch_attn_cuda.h"
#include "layers/patch_cuda.h"
#include "layers/patch_entropy_cuda.h"
#include "layers/patch_soft_cuda.h"
#include "layers/rope_cuda.h"
#include "layers/scaled_add_cuda.h"
#include "layers/selective_scan_cuda.h"
#include "layers/silu_gate_cuda.h"
#include "layers/smear_cuda.h"
#include "layers/softcap_cuda.h"
#include "layers/swiglu_cuda.h"

namespace bytelm {

// How the matrix products run when activations are stored in fp32 (storage and accumulation fp32): true
// fp32 (the parity tests), TF32 inputs or bf16-rounded inputs on the tensor cores. With bf16 storage every
// product is bf16 x bf16 with fp32 accumulation.
enum class GemmPrecision { fp32, tf32, bf16 };

// y += x over n elements (models/cuda_ops.cu).
template <class A>
void add_inplace_cuda(A* y, const A* x, size_t n, cudaStream_t stream);
// *out = scale * (sum of x[0..n)), summed in a fixed order (per-block partial sums, then those in block order).
size_t sum_cuda_partials();
void sum_cuda(float* out, const float* x, size_t n, float* partials, cudaStream_t stream, float scale = 1.f);
// dst row (g B + b) = src row (g B + b), rows of n, for every g < groups and the b whose flags[b] is set.
template <class U>
void copy_rows_where_cuda(U* dst, const U* src, const int* flags, int B, int n, int groups, cudaStream_t stream);
// dst = src rounded to A, n elements (the bf16 copies of the fp32 parameters).
template <class A>
void convert_cuda(A* dst, const float* src, size_t n, cudaStream_t stream);

// A: the storage type of activations and of the weight copies the products read (float or bf16).
// Parameters, gradients, LayerNorm statistics and losses are fp32 (the model's T = float).
template <class A>
class CudaOps {
 public:
  static constexpr bool on_host = false;
  template <class T>
  using Buffer = DeviceBuffer<T>;
  template <class T>
  using Act = A;
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
  void tune_products(bool on) { lt_->tune(on); }

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
  void convert(Buffer<A>& dst, const Buffer<float>& src) {
    if (dst.size() != src.size()) dst.assign_zero(src.size());
    convert_cuda(dst.data(), src.data(), src.size(), stream_);
  }
  // dst (host, T) = src (device, A), rounded up to T; waits for the stream.
  template <class T>
  void copy_to_host(T* dst, const A* src, size_t n) {
    if constexpr (std::is_same_v<T, A>) {
      BYTELM_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDeviceToHost, stream_));
      BYTELM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    } else {
      std::vector<A> staged(n);
      BYTELM_CUDA_CHECK(cudaMemcpyAsync(staged.data(), src, n * sizeof(A), cudaMemcpyDeviceToHost, stream_));
      BYTELM_CUDA_CHECK(cudaStreamSynchronize(stream_));
      for (size_t i = 0; i < n; i++) dst[i] = T((float)staged[i]);
    }
  }
  // rows rows of n elements: dst + i dst_pitch = src + i src_pitch (pitches in elements), device to device.
  template <class T>
  void copy_rows(T* dst, size_t dst_pitch, const T* src, size_t src_pitch, size_t n, size_t rows) {
    BYTELM_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch * sizeof(T), src, src_pitch * sizeof(T), n * sizeof(T), rows,
                                        cudaMemcpyDeviceToDevice, stream_));
  }
  const uint8_t* put_bytes(Buffer<uint8_t>& dst, const uint8_t* src, size_t n) {
    OpScope scope_("put_bytes");
    if (dst.size() < n) dst.assign_zero(n);
    BYTELM_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src, n, cudaMemcpyHostToDevice, stream_));
    return dst.data();
  }
  void add(A* y, const A* x, size_t n) {
    OpScope scope_("add");
    add_inplace_cuda(y, x, n, stream_);
  }
  template <class T>
  void zero(T* p, size_t n) {
    OpScope scope_("zero");
    BYTELM_CUDA_CHECK(cudaMemsetAsync(p, 0, n * sizeof(T), stream_));
  }
  // The mean, summed on the device in a fixed order and divided there by N into a page-locked float (plus the
  // mean of the N losses in extra, when given, which row_loss leaves out), and, if asked, every row's loss. Waits
  // for the stream, except while the stream is being captured into a graph: then it returns NaN, and
  // last_mean_loss() reads the mean once a replay has finished. Nothing of it is kept on the host, so a replay
  // of a step recorded at one N reads its own mean after forwards at other N (an evaluation's) in between.
  template <class T>
  T mean_loss(const T* loss, int N, T* row_loss, const T* extra = nullptr) {
    OpScope scope_("mean_loss");
    float* mean = partials(sum_cuda_partials() + 2);
    sum_cuda(mean, loss, N, mean + 2, stream_, 1.f / N);
    if (extra)
      sum_cuda(mean + 1, extra, N, mean + 2, stream_, 1.f / N);
    else
      BYTELM_CUDA_CHECK(cudaMemsetAsync(mean + 1, 0, sizeof(float), stream_));
    BYTELM_CUDA_CHECK(cudaMemcpyAsync(loss_mean_.data(), mean, 2 * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    has_loss_ = true;
    if (stream_capturing(stream_)) return T(NAN);
    if (row_loss) BYTELM_CUDA_CHECK(cudaMemcpyAsync(row_loss, loss, N * sizeof(T), cudaMemcpyDeviceToHost, stream_));
    BYTELM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return last_mean_loss();
  }
  float last_mean_loss() const { return has_loss_ ? loss_mean_.data()[0] + loss_mean_.data()[1] : NAN; }
  float last_extra_loss() const { return has_loss_ ? loss_mean_.data()[1] : 0.f; }
  template <class U>
  void copy_rows_where(U* dst, const U* src, const int* flags, int B, int n, int groups) {
    OpScope scope_("copy_rows_where");
    copy_rows_where_cuda(dst, src, flags, B, n, groups, stream_);
  }

  void embedding_forward(A* e, const uint8_t* x, const float* E, int N, int d) {
    OpScope scope_("embedding_forward");
    embedding_forward_cuda(e, x, E, N, d, stream_);
  }
  void embedding_backward(float* dE, const A* de, const uint8_t* x, int N, int d) {
    OpScope scope_("embedding_backward");
    embedding_backward_cuda(dE, de, x, N, d, workspace(embedding_backward_cuda_scratch_bytes(N, sizeof(A))), gemm_,
                            stream_);
  }
  void patch_mean_forward(A* p, const A* e, int B, int T_, int P, int d) {
    OpScope scope_("patch_mean_forward");
    patch_mean_forward_cuda(p, e, B, T_, P, d, stream_);
  }
  void patch_mean_backward(A* de, const A* dp, int B, int T_, int P, int d) {
    OpScope scope_("patch_mean_backward");
    patch_mean_backward_cuda(de, dp, B, T_, P, d, stream_);
  }
  void patch_attn_forward(A* p, float* weights, const A* e, const float* q, int B, int T_, int P, int d) {
    OpScope scope_("patch_attn_forward");
    patch_attn_forward_cuda(p, weights, e, q, B, T_, P, d, stream_);
  }
  void patch_attn_backward(A* de, float* dq, const A* dp, const A* e, const float* q, const float* weights, int B,
                           int T_, int P, int d) {
    OpScope scope_("patch_attn_backward");
    patch_attn_backward_cuda(de, dq, dp, e, q, weights, B, T_, P, d,
                             partials(patch_attn_backward_cuda_partials(B, T_, P, d)), stream_);
  }
  // Soft patching; its scan (n, z), keep and streaming state are fp32 (patch_soft_cuda.h).
  void patch_soft_forward(A* p, float* n, float* z, float* keep, const A* e, const float* w, const float* c, int B,
                          int T_, int P, int d, float* state) {
    OpScope scope_("patch_soft_forward");
    patch_soft_forward_cuda(p, n, z, keep, e, w, c, B, T_, P, d, state, partials(B), stream_);
  }
  void patch_soft_backward(A* de, float* dw, float* dc, const A* dp, const A* e, const float* w, const float* n,
                           const float* z, const float* keep, int B, int T_, int P, int d) {
    OpScope scope_("patch_soft_backward");
    patch_soft_backward_cuda(de, dw, dc, dp, e, w, n, z, keep, B, T_, P, d,
                             partials(patch_soft_backward_cuda_partials(B, T_, P, d)), stream_);
  }
  // Entropy patching (patch_entropy_cuda.h): where its patches lie is a Patches, in device memory.
  using Patches = EntropyPatchesCuda;
  void entropy_patches(Patches& s, const float* G, const uint8_t* x, int B, int T_, int P, double threshold) {
    OpScope scope_("entropy_patches");
    entropy_patches_cuda(s, G, x, B, T_, P, threshold, partials(kBigramRowsScratch), stream_);
  }
  void entropy_stream_patches(Patches& s, int B) { entropy_stream_patches_cuda(s, B, stream_); }
  bool patch_entropy_step(A* patch, int* closes, float* sum, int* length, Patches& s, const A* e, const uint8_t* x,
                          const float* G, int B, int P, int d, double threshold) {
    OpScope scope_("patch_entropy_step");
    patch_entropy_step_cuda(patch, closes, sum, length, s.source.data(), e, x, G, B, P, d, threshold, stream_);
    return true;
  }
  void patch_entropy_pool_forward(A* p, const A* e, const Patches& s, int d) {
    OpScope scope_("patch_entropy_pool_forward");
    patch_entropy_pool_forward_cuda(p, e, s, d, stream_);
  }
  void patch_entropy_pool_backward(A* de, const A* dp, const Patches& s, int d) {
    OpScope scope_("patch_entropy_pool_backward");
    patch_entropy_pool_backward_cuda(de, dp, s, d, stream_);
  }
  void patch_entropy_broadcast_forward(A* out, const A* p, const float* start, const A* e, const Patches& s, int d) {
    OpScope scope_("patch_entropy_broadcast_forward");
    patch_entropy_broadcast_forward_cuda(out, p, start, e, s, d, stream_);
  }
  void patch_entropy_broadcast_backward(A* dp, float* dstart, A* de, const A* dout, const Patches& s, int d) {
    OpScope scope_("patch_entropy_broadcast_backward");
    patch_entropy_broadcast_backward_cuda(dp, dstart, de, dout, s, d, stream_);
  }
  void bigram_loss_forward(float* loss, const float* G, const uint8_t* x, const uint8_t* y, int N) {
    OpScope scope_("bigram_loss_forward");
    bigram_loss_forward_cuda(loss, G, x, y, N, partials(kBigramRowsScratch), stream_);
  }
  void bigram_loss_backward(float* dG, const float* G, const uint8_t* x, const uint8_t* y, int N, float scale) {
    OpScope scope_("bigram_loss_backward");
    bigram_loss_backward_cuda(dG, G, x, y, N, scale, workspace(bigram_loss_backward_cuda_workspace_bytes()), stream_);
  }
  void patch_broadcast_forward(A* out, const A* p, const float* start, const A* e, int B, int T_, int P, int d) {
    OpScope scope_("patch_broadcast_forward");
    patch_broadcast_forward_cuda(out, p, start, e, B, T_, P, d, stream_);
  }
  void patch_broadcast_backward(A* dp, float* dstart, A* de, const A* dout, int B, int T_, int P, int d) {
    OpScope scope_("patch_broadcast_backward");
    patch_broadcast_backward_cuda(dp, dstart, de, dout, B, T_, P, d, stream_);
  }
  void layernorm_forward(A* y, float* mean, float* rstd, const A* x, const float* w, const float* b, int N, int C) {
    OpScope scope_("layernorm_forward");
    layernorm_forward_cuda(y, mean, rstd, x, w, b, N, C, stream_);
  }
  void layernorm_backward(A* dx, float* dw, float* db, const A* dy, const A* x, const float* mean, const float* rstd,
                          const float* w, int N, int C, bool accumulate_dx) {
    OpScope scope_("layernorm_backward");
    layernorm_backward_cuda(dx, dw, db, dy, x, mean, rstd, w, N, C, accumulate_dx,
                            partials(layernorm_backward_cuda_partials(N, C)), stream_);
  }
  void skip_layernorm_forward(A* q, A* out, float* mean, float* rstd, const A* x, const A* y, const A* z,
                              const float* D, const float* w, const float* b, int N, int C) {
    OpScope scope_("skip_layernorm_forward");
    skip_layernorm_forward_cuda(q, out, mean, rstd, x, y, z, D, w, b, N, C, stream_);
  }
  void skip_sum_layernorm_backward(A* dx, float* dw, float* db, float* dD, A* dz, const A* x, const A* z,
                                   const float* D, const float* mean, const float* rstd, const float* w, int N, int C) {
    OpScope scope_("skip_sum_layernorm_backward");
    skip_sum_layernorm_backward_cuda(dx, dw, db, dD, dz, x, z, D, mean, rstd, w, N, C,
                                     partials(layernorm_backward_cuda_partials(N, C)), stream_);
  }
  void diag_ssm_forward(A* y, A* u, A* h, const A* x, DiagSsmWeights<float, A> w, int B, int T_, int d, const float* h0,
                        float* h_last) {
    OpScope scope_("diag_ssm_forward");
    diag_ssm_forward_cuda(y, u, h, x, w, B, T_, d, h0, h_last, gemm_, stream_);
  }
  void diag_ssm_backward(A* dx, DiagSsmGrads<float> g, const A* dy, const A* x, const A* u, const A* h,
                         DiagSsmWeights<float, A> w, int B, int T_, int d, A* scratch) {
    OpScope scope_("diag_ssm_backward");
    diag_ssm_backward_cuda(dx, g, dy, x, u, h, w, B, T_, d, scratch,
                           partials(diag_ssm_backward_cuda_partials(B, T_, d)), gemm_, stream_);
  }
  void swiglu_forward(A* y, A* g, A* m, const A* x, const A* W12, const A* W3, int N, int d, int H, const A* residual) {
    OpScope scope_("swiglu_forward");
    swiglu_forward_cuda(y, g, m, x, W12, W3, N, d, H, residual, swiglu_padded(W12, swiglu_padded_elems_cuda(d, H)),
                        gemm_, stream_);
  }
  // Reads the padded copies of W12 and W3 that the forward made (found by W12), not W3 itself.
  void swiglu_backward(A* dx, float* dW12, float* dW3, const A* dy, const A* x, const A* g, const A* m, const A* W12,
                       const A* /*W3*/, int N, int d, int H, A* scratch) {
    OpScope scope_("swiglu_backward");
    auto padded = swiglu_padded_.find(W12);
    if (padded == swiglu_padded_.end()) throw Error("swiglu_backward: no forward has run with these weights");
    swiglu_backward_cuda(dx, dW12, dW3, dy, x, g, m, (const A*)padded->second.data(), N, d, H, scratch,
                         (float*)workspace(swiglu_dw_scratch_floats_cuda(d, H) * sizeof(float)), gemm_, stream_);
  }
  void linear_forward(A* y, const A* x, const A* W, int N, int in, int out) {
    OpScope scope_("linear_forward");
    linear_forward_cuda(y, x, W, N, in, out, gemm_, stream_);
  }
  void linear_backward(A* dx, float* dW, const A* dy, const A* x, const A* W, int N, int in, int out,
                       bool accumulate_dx) {
    OpScope scope_("linear_backward");
    linear_backward_cuda(dx, dW, dy, x, W, N, in, out, accumulate_dx, gemm_, stream_);
  }
  void cross_entropy(float* loss, A* dlogits, const A* logits, const uint8_t* y, int N, float scale) {
    OpScope scope_("cross_entropy");
    cross_entropy_forward_backward_cuda(loss, dlogits, logits, y, N, scale, stream_);
  }
  // The mamba family's two layers (models/mamba.cpp); the streaming states are fp32.
  void causal_conv_forward(A* y, const A* x, const float* w, const float* bias, int B, int T_, int C, int K,
                           float* state) {
    OpScope scope_("causal_conv_forward");
    causal_conv_forward_cuda(y, x, w, bias, B, T_, C, K, state, stream_);
  }
  void causal_conv_backward(A* dx, float* dw, float* dbias, const A* dy, const A* x, const float* w, const float* bias,
                            int B, int T_, int C, int K) {
    OpScope scope_("causal_conv_backward");
    causal_conv_backward_cuda(dx, dw, dbias, dy, x, w, bias, B, T_, C, K,
                              partials(causal_conv_backward_cuda_partials(B, T_, C, K)), stream_);
  }
  void selective_scan_forward(A* y, ScanInputs<A> in, SelectiveScanWeights<float> w, int B, int T_, int Di, int N,
                              float* state) {
    OpScope scope_("selective_scan_forward");
    selective_scan_forward_cuda(y, in, w, B, T_, Di, N, state, stream_);
  }
  void selective_scan_backward(ScanInputGrads<A> grad_in, SelectiveScanGrads<float> g, const A* dy, ScanInputs<A> in,
                               SelectiveScanWeights<float> w, int B, int T_, int Di, int N) {
    OpScope scope_("selective_scan_backward");
    selective_scan_backward_cuda(grad_in, g, dy, in, w, B, T_, Di, N,
                                 workspace(selective_scan_backward_cuda_workspace_bytes(B, T_, Di, N)), stream_);
  }
  // The transformer and hybrid families' layers (models/transformer.cpp); causal_conv above is the hybrid's long
  // convolution too. The SmearGate's gates, the attention's lse and delta are fp32.
  void bigram_forward(A* e, const uint8_t* x, const float* table, int B, int T_, int buckets, int dim,
                      const uint8_t* prev) {
    OpScope scope_("bigram_forward");
    bigram_forward_cuda(e, x, table, B, T_, buckets, dim, prev, stream_);
  }
  void bigram_backward(float* dtable, const A* de, const uint8_t* x, int B, int T_, int buckets, int dim) {
    OpScope scope_("bigram_backward");
    bigram_backward_cuda(dtable, de, x, B, T_, buckets, dim,
                         workspace(bigram_backward_cuda_workspace_bytes(B, T_, buckets)), stream_);
  }
  void smear_forward(A* y, float* gate, const A* x, const float* w, const float* lambda, int B, int T_, int d, int k,
                     const A* prev) {
    OpScope scope_("smear_forward");
    smear_forward_cuda(y, gate, x, w, lambda, B, T_, d, k, prev, stream_);
  }
  void smear_backward(A* dx, float* dw, float* dlambda, const A* dy, const A* x, const float* gate, const float* w,
                      const float* lambda, int B, int T_, int d, int k) {
    OpScope scope_("smear_backward");
    smear_backward_cuda(dx, dw, dlambda, dy, x, gate, w, lambda, B, T_, d, k,
                        partials(smear_backward_cuda_partials(B, T_, k)), stream_);
  }
  void rope_forward(A* x, RopeShape s) {
    OpScope scope_("rope_forward");
    rope_forward_cuda(x, s, stream_);
  }
  void rope_backward(A* dx, RopeShape s) {
    OpScope scope_("rope_backward");
    rope_backward_cuda(dx, s, stream_);
  }
  void attention_forward(A* o, float* lse, const A* q, const A* k, const A* v, AttentionShape s, float scale) {
    OpScope scope_("attention_forward");
    attention_forward_cuda(o, lse, q, k, v, s, scale, stream_);
  }
  void attention_backward(A* dq, A* dk, A* dv, float* delta, const A* dout, const A* q, const A* k, const A* v,
                          const A* o, const float* lse, AttentionShape s, float scale) {
    OpScope scope_("attention_backward");
    attention_backward_cuda(dq, dk, dv, delta, dout, q, k, v, o, lse, s, scale, stream_);
  }
  void attention_decode(A* o, A* k_cache, A* v_cache, const A* q, const A* k, const A* v, int qkv_stride, int B, int H,
                        int Dh, int slots, int pos, float scale) {
    OpScope scope_("attention_decode");
    attention_decode_cuda(o, k_cache, v_cache, q, k, v, qkv_stride, B, H, Dh, slots, pos, scale,
                          partials(attention_decode_cuda_scratch(B, H, slots)), stream_);
  }
  void mlp_forward(A* y, A* h, A* a, const A* x, const A* W1, const A* W2, int N, int d, int H, float leak) {
    OpScope scope_("mlp_forward");
    mlp_forward_cuda(y, h, a, x, W1, W2, N, d, H, leak, gemm_, stream_);
  }
  void mlp_backward(A* dx, float* dW1, float* dW2, const A* dy, const A* x, const A* h, const A* a, const A* W1,
                    const A* W2, int N, int d, int H, float leak, A* scratch) {
    OpScope scope_("mlp_backward");
    mlp_backward_cuda(dx, dW1, dW2, dy, x, h, a, W1, W2, N, d, H, leak, scratch, gemm_, stream_);
  }
  void silu_gate_forward(A* y, const A* v, const A* z, size_t n) {
    OpScope scope_("silu_gate_forward");
    silu_gate_forward_cuda(y, v, z, n, stream_);
  }
  void silu_gate_backward(A* dv, A* dz, const A* dy, const A* v, const A* z, size_t n) {
    OpScope scope_("silu_gate_backward");
    silu_gate_backward_cuda(dv, dz, dy, v, z, n, stream_);
  }
  void scaled_add_forward(A* y, const A* x, const float* w, size_t n) {
    OpScope scope_("scaled_add_forward");
    scaled_add_forward_cuda(y, x, w, n, stream_);
  }
  void scaled_add_backward(A* dx, float* dw, const A* dy, const A* x, const float* w, size_t n) {
    OpScope scope_("scaled_add_backward");
    scaled_add_backward_cuda(dx, dw, dy, x, w, n, partials(scaled_add_backward_cuda_partials()), stream_);
  }
  void softcap_forward(A* y, const A* x, size_t n, float cap) {
    OpScope scope_("softcap_forward");
    softcap_forward_cuda(y, x, n, cap, stream_);
  }
  void softcap_backward(A* dx, const A* dy, const A* x, size_t n, float cap) {
    OpScope scope_("softcap_backward");
    softcap_backward_cuda(dx, dy, x, n, cap, stream_);
  }

 private:
  // Scratch for the deterministic reductions; grows to the largest request (sizes settle after the first step).
  float* partials(size_t n) {
    if (partials_.size() < n) partials_.assign_zero(n);
    return partials_.data();
  }
  void* workspace(size_t bytes) {
    size_t n = (bytes + sizeof(float) - 1) / sizeof(float);
    if (workspace_.size() < n) workspace_.assign_zero(n);
    return workspace_.data();
  }
  // Each SwiGLU layer's padded weight copies, by its W12: written by its forward, read by its backward.
  A* swiglu_padded(const A* W12, size_t elems) {
    DeviceBuffer<A>& copies = swiglu_padded_[W12];
    if (copies.size() < elems) copies.assign_zero(elems);
    return copies.data();
  }
  cudaStream_t stream_ = nullptr;
  Gemm gemm_;
  DeviceBuffer<float> partials_, workspace_;
  std::map<const A*, DeviceBuffer<A>> swiglu_padded_;
  DeviceBuffer<uint8_t> cublas_workspace_;  // fixed, so cuBLAS never allocates while a graph is captured
  std::unique_ptr<GemmLt> lt_;              // gemm_.lt, on cublas_workspace_
  PinnedBuffer<float> loss_mean_;           // the mean loss, and extra's (0 without it)
  bool has_loss_ = false;
};

}  // namespace bytelm
