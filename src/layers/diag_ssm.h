// Diagonal linear state-space layer (state width = d):
//   u = x W_in^T;  h_t = a * h_{t-1} + (1 - a) * u_t;  y = h W_out^T
// with a per-channel decay a = exp(-softplus(lam)) in (0, 1). Sequences are
// [B, T, d] row-major; the recurrence runs along T from h_{-1} = h0 (zero when
// h0 is null). Streaming is the forward with T = 1 and the state passed as h0.
// The layer's diagonal skip D * x is added where the block sums its residual,
// in the same pass as the next LayerNorm (layernorm.h: skip_layernorm_forward,
// and skip_sum_layernorm_backward for its gradient), so it is not part of these calls.
#pragma once
#include <cstddef>

namespace bytelm {

// M is the type the matrix products read the two matrices in (the GPU's bf16 path keeps bf16 copies of them).
template <class T, class M = T>
struct DiagSsmWeights {
  const M* W_in;   // [d, d]
  const T* lam;    // [d], decay parameter
  const M* W_out;  // [d, d]
};

template <class T>
struct DiagSsmGrads {
  T* W_in;
  T* lam;
  T* W_out;
};

// Decay init: half-lives log-spaced from 1 to 2048 bytes over the channels;
// the recurrence steps once per patch, so a half-life of H bytes is H/patch steps.
template <class T>
void diag_ssm_init_decay(T* lam, int d, int patch);

// h = scan(u): the recurrence alone, over [B, T, d]; h0 is [B, d] or null.
template <class T>
void diag_scan_forward(T* h, const T* u, const T* lam, int B, int T_, int d, const T* h0);

// Given dh (overwritten in place by du) and the forward's u and h: du, and dlam += d/dlam.
template <class T>
void diag_scan_backward(T* dh_to_du, T* dlam, const T* u, const T* h, const T* lam, int B, int T_, int d);

// Whole layer. u and h ([B*T, d]) are kept for the backward. h_last ([B, d] or null; it may be h0) receives each
// sequence's last state, for streaming. The two products are product(y, x, W, N, in, out), y = x W^T: linear_forward
// in diag_ssm_forward; the CPU backend passes its own (cpu_ops.h, as for swiglu_forward_with).
template <class T, class Product>
void diag_ssm_forward_with(const Product& product, T* y, T* u, T* h, const T* x, DiagSsmWeights<T> w, int B, int T_,
                           int d, const T* h0, T* h_last) {
  int N = B * T_;
  product(u, x, w.W_in, N, d, d);
  diag_scan_forward(h, u, w.lam, B, T_, d, h0);
  if (h_last && T_ > 0)
    for (int b = 0; b < B; b++)
      for (int c = 0; c < d; c++) h_last[(size_t)b * d + c] = h[((size_t)b * T_ + T_ - 1) * d + c];
  product(y, h, w.W_out, N, d, d);
}

template <class T>
void diag_ssm_forward(T* y, T* u, T* h, const T* x, DiagSsmWeights<T> w, int B, int T_, int d, const T* h0, T* h_last);

// dx = d/dx (overwrites), grads accumulate. scratch: [B*T*d].
template <class T>
void diag_ssm_backward(T* dx, DiagSsmGrads<T> g, const T* dy, const T* x, const T* u, const T* h, DiagSsmWeights<T> w,
                       int B, int T_, int d, T* scratch);

}  // namespace bytelm
