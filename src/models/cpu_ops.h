// The CPU backend of the model compositions: host buffers and the fp32/fp64
// reference layers. A model written against this interface (see ssm.cpp) runs
// unchanged on CudaOps (cuda_ops.h), whose methods have the same names.
#pragma once
#include <cstdint>
#include <cstring>
#include <map>
#include <type_traits>
#include <vector>

#include "core/blas.h"
#include "layers/attention.h"
#include "layers/bigram.h"
#include "layers/causal_conv.h"
#include "layers/cross_entropy.h"
#include "layers/diag_ssm.h"
#include "layers/embedding.h"
#include "layers/layernorm.h"
#include "layers/linear.h"
#include "layers/mlp.h"
#include "layers/patch.h"
#include "layers/patch_attn.h"
#include "layers/patch_entropy.h"
#include "layers/patch_soft.h"
#include "layers/quantized_linear.h"
#include "layers/rope.h"
#include "layers/scaled_add.h"
#include "layers/selective_scan.h"
#include "layers/silu_gate.h"
#include "layers/smear.h"
#include "layers/softcap.h"
#include "layers/swiglu.h"

namespace bytelm {

struct CpuOps {
  static constexpr bool on_host = true;
  template <class T>
  using Buffer = std::vector<T>;
  template <class T>
  using Act = T;  // activations are stored as the model's own type
  template <class T>
  static void resize(Buffer<T>& b, size_t n) { b.assign(n, T(0)); }
  // Row stride of the SwiGLU hidden activations (g has 2 of these per row, m one).
  static int hidden_stride(int H) { return H; }

  // A quantized checkpoint's weight matrices as 8-bit codes (Model::use_quantized_weights), by the address of their
  // first fp32 element in the parameters. Products of at most kQuantizedRows rows (the streams' steps) read them
  // instead of the fp32 weights, a quarter of the bytes; larger ones (a parallel forward, where BLAS reuses each
  // weight across many rows) read the fp32 weights, which hold the same values dequantized.
  static constexpr int kQuantizedRows = 16;
  std::map<const float*, QuantizedMatrix> quantized;

  // Codes pay where the fp32 weights are too many to stay in cache between a stream's steps; where they stay,
  // converting codes costs more than the bytes it saves. On a 2-core EPYC (32 MB L3), generating from codes ran
  // 3.6-3.9x the fp32 bytes/s at ssm-10m (39 MB of fp32 matrices) and 7.1x at ssm-100m (405 MB), but -10% to +12%
  // at ssm-2m (6.8 MB) and -15% at the demo model (1.8 MB).
  static constexpr size_t kQuantizedMinBytes = size_t(16) << 20;
  void keep_quantized(const float* params, const std::vector<std::pair<size_t, QuantizedMatrix>>& matrices,
                      QuantizedUse use) {
    size_t bytes = 0;
    for (const auto& m : matrices) bytes += (size_t)(m.second.rows * m.second.cols) * sizeof(float);
    if (use == QuantizedUse::where_it_pays && bytes < kQuantizedMinBytes) return;
    for (const auto& [offset, q] : matrices) quantized[params + offset] = widen_codes(q);
  }

  // The entry of `known` (by a [rows, cols] matrix's first fp32 element) that a product over `in` columns and `out`
  // rows of W reads whole rows of, and the first of them; null where W lies in none.
  static const QuantizedMatrix& matrix_shape(const QuantizedMatrix& q) { return q; }
  static const ProductInputs& matrix_shape(ProductInputs* p) { return *p; }
  template <class V>
  static const V* matrix_holding(const std::map<const float*, V>& known, const float* W, int in, int out,
                                 int64_t* first_row) {
    auto it = known.upper_bound(W);
    if (it == known.begin()) return nullptr;
    --it;
    const auto& m = matrix_shape(it->second);
    int64_t offset = W - it->first;
    if (in != m.cols || offset % in != 0 || offset / in + out > m.rows) return nullptr;
    *first_row = offset / in;
    return &it->second;
  }

  // y = x W^T from the codes where W is whole rows of a quantized matrix and N <= kQuantizedRows; false elsewhere.
  bool quantized_product(float* y, const float* x, const float* W, int N, int in, int out) const {
    int64_t first_row = 0;
    const QuantizedMatrix* q = N <= kQuantizedRows ? matrix_holding(quantized, W, in, out, &first_row) : nullptr;
    if (q) quantized_linear_forward(y, x, *q, first_row, N, out);
    return q != nullptr;
  }

  // Calibration (Model::record_product_inputs): each product that reads rows of a matrix here adds its input rows x
  // (x^T x and their count) to the matrix's entry; empty: nothing is recorded.
  std::map<const float*, ProductInputs*> recording;
  void record_product_inputs(const float* x, const float* W, int N, int in, int out) {
    int64_t first_row = 0;
    ProductInputs* const* p = matrix_holding(recording, W, in, out, &first_row);
    if (!p) return;
    std::vector<float> gram((size_t)in * in);
    gemm(true, false, in, in, N, 1.f, x, in, x, in, 0.f, gram.data(), in);
    for (size_t i = 0; i < gram.size(); i++) (*p)->gram[i] += gram[i];
    (*p)->count += N;
  }

  const uint8_t* put_bytes(Buffer<uint8_t>& dst, const uint8_t* src, size_t n) {
    dst.assign(src, src + n);
    return dst.data();
  }
  template <class T>
  void add(T* y, const T* x, size_t n) {
    // small adds (streaming, tests) are cheaper than waking the thread pool
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
  }
  template <class T>
  void zero(T* p, size_t n) { std::memset(p, 0, n * sizeof(T)); }
  // rows rows of n elements: dst + i dst_pitch = src + i src_pitch (pitches in elements).
  template <class T>
  void copy_rows(T* dst, size_t dst_pitch, const T* src, size_t src_pitch, size_t n, size_t rows) {
    for (size_t i = 0; i < rows; i++) std::memcpy(dst + i * dst_pitch, src + i * src_pitch, n * sizeof(T));
  }
  template <class T>
  void copy_to_host(T* dst, const T* src, size_t n) { std::memcpy(dst, src, n * sizeof(T)); }
  // Mean of the N losses, plus the mean of N more (extra, or null) that row_loss leaves out; copies the N losses
  // to row_loss (host) when given. last_extra_loss() is the second mean.
  template <class T>
  T mean_loss(const T* loss, int N, T* row_loss, const T* extra = nullptr) {
    T total = 0, more = 0;
    for (int i = 0; i < N; i++) total += loss[i];
    if (row_loss) std::memcpy(row_loss, loss, sizeof(T) * N);
    if (extra)
      for (int i = 0; i < N; i++) more += extra[i];
    extra_mean_ = double(more / N);
    return total / N + more / N;
  }
  double last_extra_loss() const { return extra_mean_; }
  // dst row (g B + b) = src row (g B + b), rows of n, for every g < groups and the b whose flags[b] is set.
  template <class U>
  void copy_rows_where(U* dst, const U* src, const int* flags, int B, int n, int groups) {
    for (int g = 0; g < groups; g++)
      for (int b = 0; b < B; b++)
        if (flags[b]) std::memcpy(dst + ((size_t)g * B + b) * n, src + ((size_t)g * B + b) * n, sizeof(U) * n);
  }

  template <class T>
  void embedding_forward(T* e, const uint8_t* x, const T* E, int N, int d) { bytelm::embedding_forward(e, x, E, N, d); }
  template <class T>
  void embedding_backward(T* dE, const T* de, const uint8_t* x, int N, int d) { bytelm::embedding_backward(dE, de, x, N, d); }
  template <class T>
  void patch_mean_forward(T* p, const T* e, int B, int T_, int P, int d) { bytelm::patch_mean_forward(p, e, B, T_, P, d); }
  template <class T>
  void patch_mean_backward(T* de, const T* dp, int B, int T_, int P, int d) { bytelm::patch_mean_backward(de, dp, B, T_, P, d); }
  template <class T>
  void patch_attn_forward(T* p, T* weights, const T* e, const T* q, int B, int T_, int P, int d) {
    bytelm::patch_attn_forward(p, weights, e, q, B, T_, P, d);
  }
  template <class T>
  void patch_attn_backward(T* de, T* dq, const T* dp, const T* e, const T* q, const T* weights, int B, int T_, int P,
                           int d) {
    bytelm::patch_attn_backward(de, dq, dp, e, q, weights, B, T_, P, d);
  }
  // So have the soft and the entropy poolings; where the entropy pooling's patches lie is a Patches.
  using Patches = EntropyPatches;
  template <class T>
  void entropy_patches(Patches& s, const T* G, const uint8_t* x, int B, int T_, int P, double threshold) {
    s = bytelm::entropy_patches(G, x, B, T_, P, threshold);
  }
  // B streams' patches (T = 1, one slot), each reading the start vector.
  void entropy_stream_patches(Patches& s, int B) {
    s = Patches{B, 1, 1, std::vector<int>(B, 0), std::vector<int>(B, 0), std::vector<int>(B, -1)};
  }
  // Returns whether any stream's patch closed (CudaOps answers true: it would have to wait to know).
  template <class T>
  bool patch_entropy_step(T* patch, int* closes, T* sum, int* length, Patches& s, const T* e, const uint8_t* x,
                          const T* G, int B, int P, int d, double threshold) {
    bytelm::patch_entropy_step(patch, closes, sum, length, s.source.data(), e, x, G, B, P, d, threshold);
    for (int b = 0; b < B; b++)
      if (closes[b]) return true;
    return false;
  }
  template <class T>
  void bigram_loss_forward(T* loss, const T* G, const uint8_t* x, const uint8_t* y, int N) {
    bytelm::bigram_loss_forward(loss, G, x, y, N);
  }
  template <class T>
  void bigram_loss_backward(T* dG, const T* G, const uint8_t* x, const uint8_t* y, int N, T scale) {
    bytelm::bigram_loss_backward(dG, G, x, y, N, scale);
  }
  template <class T>
  void patch_soft_forward(T* p, T* n, T* z, T* keep, const T* e, const T* w, const T* c, int B, int T_, int P, int d,
                          T* state) {
    bytelm::patch_soft_forward(p, n, z, keep, e, w, c, B, T_, P, d, state);
  }
  template <class T>
  void patch_soft_backward(T* de, T* dw, T* dc, const T* dp, const T* e, const T* w, const T* n, const T* z,
                           const T* keep, int B, int T_, int P, int d) {
    bytelm::patch_soft_backward(de, dw, dc, dp, e, w, n, z, keep, B, T_, P, d);
  }
  template <class T>
  void patch_entropy_pool_forward(T* p, const T* e, const EntropyPatches& s, int d) {
    bytelm::patch_entropy_pool_forward(p, e, s, d);
  }
  template <class T>
  void patch_entropy_pool_backward(T* de, const T* dp, const EntropyPatches& s, int d) {
    bytelm::patch_entropy_pool_backward(de, dp, s, d);
  }
  template <class T>
  void patch_entropy_broadcast_forward(T* out, const T* p, const T* start, const T* e, const EntropyPatches& s, int d) {
    bytelm::patch_entropy_broadcast_forward(out, p, start, e, s, d);
  }
  template <class T>
  void patch_entropy_broadcast_backward(T* dp, T* dstart, T* de, const T* dout, const EntropyPatches& s, int d) {
    bytelm::patch_entropy_broadcast_backward(dp, dstart, de, dout, s, d);
  }
  template <class T>
  void patch_broadcast_forward(T* out, const T* p, const T* start, const T* e, int B, int T_, int P, int d) {
    bytelm::patch_broadcast_forward(out, p, start, e, B, T_, P, d);
  }
  template <class T>
  void patch_broadcast_backward(T* dp, T* dstart, T* de, const T* dout, int B, int T_, int P, int d) {
    bytelm::patch_broadcast_backward(dp, dstart, de, dout, B, T_, P, d);
  }
  template <class T>
  void layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int N, int C) {
    bytelm::layernorm_forward(y, mean, rstd, x, w, b, N, C);
  }
  template <class T>
  void layernorm_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* mean, const T* rstd, const T* w,
                          int N, int C, bool accumulate_dx) {
    bytelm::layernorm_backward(dx, dw, db, dy, x, mean, rstd, w, N, C, accumulate_dx);
  }
  template <class T>
  void skip_layernorm_forward(T* q, T* out, T* mean, T* rstd, const T* x, const T* y, const T* z, const T* D,
                              const T* w, const T* b, int N, int C) {
    bytelm::skip_layernorm_forward(q, out, mean, rstd, x, y, z, D, w, b, N, C);
  }
  template <class T>
  void skip_sum_layernorm_backward(T* dx, T* dw, T* db, T* dD, T* dz, const T* x, const T* z, const T* D,
                                   const T* mean, const T* rstd, const T* w, int N, int C) {
    bytelm::skip_sum_layernorm_backward(dx, dw, db, dD, dz, x, z, D, mean, rstd, w, N, C);
  }
  template <class T>
  void diag_ssm_forward(T* y, T* u, T* h, const T* x, DiagSsmWeights<T> w, int B, int T_, int d, const T* h0,
                        T* h_last) {
    bytelm::diag_ssm_forward_with(product<T>(), y, u, h, x, w, B, T_, d, h0, h_last);
  }
  template <class T>
  void diag_ssm_backward(T* dx, DiagSsmGrads<T> g, const T* dy, const T* x, const T* u, const T* h,
                         DiagSsmWeights<T> w, int B, int T_, int d, T* scratch) {
    bytelm::diag_ssm_backward(dx, g, dy, x, u, h, w, B, T_, d, scratch);
  }
  template <class T>
  void swiglu_forward(T* y, T* g, T* m, const T* x, const T* W12, const T* W3, int N, int d, int H,
                      const T* residual) {
    bytelm::swiglu_forward_with(product<T>(), y, g, m, x, W12, W3, N, d, H, residual);
  }
  template <class T>
  void swiglu_backward(T* dx, T* dW12, T* dW3, const T* dy, const T* x, const T* g, const T* m, const T* W12,
                       const T* W3, int N, int d, int H, T* scratch) {
    bytelm::swiglu_backward(dx, dW12, dW3, dy, x, g, m, W12, W3, N, d, H, scratch);
  }
  // linear_forward as the composite layers (swiglu, mlp, diag_ssm) take their products.
  template <class T>
  auto product() {
    return [this](T* y, const T* x, const T* W, int N, int in, int out) { linear_forward(y, x, W, N, in, out); };
  }
  template <class T>
  void linear_forward(T* y, const T* x, const T* W, int N, int in, int out) {
    if constexpr (std::is_same_v<T, float>) {
      if (!recording.empty()) record_product_inputs(x, W, N, in, out);
      if (quantized_product(y, x, W, N, in, out)) return;
    }
    bytelm::linear_forward(y, x, W, N, in, out);
  }
  template <class T>
  void linear_backward(T* dx, T* dW, const T* dy, const T* x, const T* W, int N, int in, int out, bool accumulate_dx) {
    bytelm::linear_backward(dx, dW, dy, x, W, N, in, out, accumulate_dx);
  }
  template <class T>
  void cross_entropy(T* loss, T* dlogits, const T* logits, const uint8_t* y, int N, T scale) {
    bytelm::cross_entropy_forward_backward(loss, dlogits, logits, y, N, scale);
  }
  // The mamba family's two layers (models/mamba.cpp).
  template <class T>
  void causal_conv_forward(T* y, const T* x, const T* w, const T* bias, int B, int T_, int C, int K, T* state) {
    bytelm::causal_conv_forward(y, x, w, bias, B, T_, C, K, state);
  }
  template <class T>
  void causal_conv_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w, const T* bias, int B, int T_,
                            int C, int K) {
    bytelm::causal_conv_backward(dx, dw, dbias, dy, x, w, bias, B, T_, C, K);
  }
  template <class T>
  void selective_scan_forward(T* y, ScanInputs<T> in, SelectiveScanWeights<T> w, int B, int T_, int Di, int N,
                              T* state) {
    bytelm::selective_scan_forward(y, in, w, B, T_, Di, N, state);
  }
  template <class T>
  void selective_scan_backward(ScanInputGrads<T> grad_in, SelectiveScanGrads<T> g, const T* dy, ScanInputs<T> in,
                               SelectiveScanWeights<T> w, int B, int T_, int Di, int N) {
    bytelm::selective_scan_backward(grad_in, g, dy, in, w, B, T_, Di, N);
  }
  // The transformer and hybrid families' layers (models/transformer.cpp); causal_conv above is the hybrid's long
  // convolution too.
  template <class T>
  void bigram_forward(T* e, const uint8_t* x, const T* table, int B, int T_, int buckets, int dim, const uint8_t* prev) {
    bytelm::bigram_forward(e, x, table, B, T_, buckets, dim, prev);
  }
  template <class T>
  void bigram_backward(T* dtable, const T* de, const uint8_t* x, int B, int T_, int buckets, int dim) {
    bytelm::bigram_backward(dtable, de, x, B, T_, buckets, dim);
  }
  template <class T>
  void smear_forward(T* y, T* gate, const T* x, const T* w, const T* lambda, int B, int T_, int d, int k, const T* prev) {
    bytelm::smear_forward(y, gate, x, w, lambda, B, T_, d, k, prev);
  }
  template <class T>
  void smear_backward(T* dx, T* dw, T* dlambda, const T* dy, const T* x, const T* gate, const T* w, const T* lambda,
                      int B, int T_, int d, int k) {
    bytelm::smear_backward(dx, dw, dlambda, dy, x, gate, w, lambda, B, T_, d, k);
  }
  template <class T>
  void rope_forward(T* x, RopeShape s) { bytelm::rope_forward(x, s); }
  template <class T>
  void rope_backward(T* dx, RopeShape s) { bytelm::rope_backward(dx, s); }
  template <class T>
  void attention_forward(T* o, T* lse, const T* q, const T* k, const T* v, AttentionShape s, T scale) {
    bytelm::attention_forward(o, lse, q, k, v, s, scale);
  }
  template <class T>
  void attention_backward(T* dq, T* dk, T* dv, T* delta, const T* dout, const T* q, const T* k, const T* v, const T* o,
                          const T* lse, AttentionShape s, T scale) {
    bytelm::attention_backward(dq, dk, dv, delta, dout, q, k, v, o, lse, s, scale);
  }
  template <class T>
  void attention_decode(T* o, T* k_cache, T* v_cache, const T* q, const T* k, const T* v, int qkv_stride, int B, int H,
                        int Dh, int slots, int pos, T scale) {
    bytelm::attention_decode(o, k_cache, v_cache, q, k, v, qkv_stride, B, H, Dh, slots, pos, scale);
  }
  template <class T>
  void mlp_forward(T* y, T* h, T* a, const T* x, const T* W1, const T* W2, int N, int d, int H, T leak) {
    bytelm::mlp_forward_with(product<T>(), y, h, a, x, W1, W2, N, d, H, leak);
  }
  template <class T>
  void mlp_backward(T* dx, T* dW1, T* dW2, const T* dy, const T* x, const T* h, const T* a, const T* W1, const T* W2,
                    int N, int d, int H, T leak, T* scratch) {
    bytelm::mlp_backward(dx, dW1, dW2, dy, x, h, a, W1, W2, N, d, H, leak, scratch);
  }
  template <class T>
  void silu_gate_forward(T* y, const T* v, const T* z, size_t n) { bytelm::silu_gate_forward(y, v, z, n); }
  template <class T>
  void silu_gate_backward(T* dv, T* dz, const T* dy, const T* v, const T* z, size_t n) {
    bytelm::silu_gate_backward(dv, dz, dy, v, z, n);
  }
  template <class T>
  void scaled_add_forward(T* y, const T* x, const T* w, size_t n) { bytelm::scaled_add_forward(y, x, w, n); }
  template <class T>
  void scaled_add_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, size_t n) {
    bytelm::scaled_add_backward(dx, dw, dy, x, w, n);
  }
  template <class T>
  void softcap_forward(T* y, const T* x, size_t n, T cap) { bytelm::softcap_forward(y, x, n, cap); }
  template <class T>
  void softcap_backward(T* dx, const T* dy, const T* x, size_t n, T cap) { bytelm::softcap_backward(dx, dy, x, n, cap); }

 private:
  double extra_mean_ = 0;  // mean_loss's second mean, last time
};

}  // namespace bytelm
