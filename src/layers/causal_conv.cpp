#include "layers/causal_conv.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <vector>

#include "core/parallel.h"
#include "layers/activations.h"

namespace bytelm {

namespace {

// w [C, K] as [K, C], so the loops over channels read it contiguously.
template <class T>
std::vector<T> taps_by_offset(const T* w, int C, int K) {
  std::vector<T> wt((size_t)K * C);
  for (int c = 0; c < C; c++)
    for (int k = 0; k < K; k++) wt[(size_t)k * C + c] = w[(size_t)c * K + k];
  return wt;
}

// pre[c] = bias[c] + sum_k wt[k, c] * input[t - (K-1) + k, c] for one sequence x [T, C]; the inputs
// before t = 0 come from state [K-1, C] (none: zero). The forward, the backward and streaming all
// go through here, so they add in the same order.
template <class T>
void pre_activation_row(T* pre, const T* x, const T* state, const T* wt, const T* bias, int t, int C, int K) {
  for (int c = 0; c < C; c++) pre[c] = bias[c];
  for (int k = 0; k < K; k++) {
    int s = t - (K - 1) + k;
    const T* in = s >= 0 ? x + (size_t)s * C : state ? state + (size_t)(K - 1 + s) * C : nullptr;
    if (!in) continue;
    const T* wk = wt + (size_t)k * C;
    for (int c = 0; c < C; c++) pre[c] += wk[c] * in[c];
  }
}

}  // namespace

template <class T>
void causal_conv_forward(T* y, const T* x, const T* w, const T* bias, int B, int T_, int C, int K, T* state) {
  std::vector<T> wt = taps_by_offset(w, C, K);
  size_t history = (size_t)(K - 1) * C;
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++) {
    const T* xb = x + (size_t)b * T_ * C;
    T* yb = y + (size_t)b * T_ * C;
    T* sb = state ? state + b * history : nullptr;
    for (int t = 0; t < T_; t++) {
      T* yt = yb + (size_t)t * C;
      pre_activation_row(yt, xb, sb, wt.data(), bias, t, C, K);
      for (int c = 0; c < C; c++) yt[c] = silu(yt[c]);
    }
    if (sb) {
      // the last K-1 inputs: of x, or of the old state where T < K-1
      std::vector<T> last(history);
      for (int j = 0; j < K - 1; j++) {
        int s = T_ - (K - 1) + j;
        const T* in = s >= 0 ? xb + (size_t)s * C : sb + (size_t)(K - 1 + s) * C;
        std::copy(in, in + C, last.begin() + (size_t)j * C);
      }
      std::copy(last.begin(), last.end(), sb);
    }
  }
}

template <class T>
void causal_conv_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w, const T* bias, int B, int T_,
                          int C, int K) {
  std::vector<T> wt = taps_by_offset(w, C, K);
  // per-thread partials: dw as [K, C] (like wt), then dbias [C]
  std::vector<T> dwb((size_t)(K + 1) * C, T(0));
  parallel_rows_reduce(B, (K + 1) * C, dwb.data(), [&](int b, T* part) {
    const T* xb = x + (size_t)b * T_ * C;
    const T* dyb = dy + (size_t)b * T_ * C;
    T* dxb = dx + (size_t)b * T_ * C;
    std::fill(dxb, dxb + (size_t)T_ * C, T(0));
    std::vector<T> g(C);  // d(loss)/d(pre-activation) of row t
    for (int t = 0; t < T_; t++) {
      pre_activation_row(g.data(), xb, (const T*)nullptr, wt.data(), bias, t, C, K);
      for (int c = 0; c < C; c++) {
        g[c] = dyb[(size_t)t * C + c] * silu_grad(g[c]);
        part[(size_t)K * C + c] += g[c];
      }
      for (int k = std::max(0, K - 1 - t); k < K; k++) {
        size_t s = (size_t)(t - (K - 1) + k) * C;
        const T* wk = wt.data() + (size_t)k * C;
        T* dwk = part + (size_t)k * C;
        for (int c = 0; c < C; c++) {
          dwk[c] += g[c] * xb[s + c];
          dxb[s + c] += g[c] * wk[c];
        }
      }
    }
  });
  for (int c = 0; c < C; c++) {
    for (int k = 0; k < K; k++) dw[(size_t)c * K + k] += dwb[(size_t)k * C + c];
    dbias[c] += dwb[(size_t)K * C + c];
  }
}

template <class T>
void causal_conv_init_s4d_lin(T* w, int C, int K, int modes, Rng& rng) {
  for (int c = 0; c < C; c++) {
    double dt = std::exp(std::log(1.0 / K) * rng.uniform());
    std::vector<std::complex<double>> coef(modes);
    for (auto& z : coef) z = {rng.normal() * std::sqrt(0.5), rng.normal() * std::sqrt(0.5)};
    for (int j = 0; j < K; j++) {
      double tap = 0;
      for (int n = 0; n < modes; n++) tap += (coef[n] * std::exp(dt * j * std::complex<double>(-0.5, M_PI * n))).real();
      w[(size_t)c * K + (K - 1 - j)] = T(dt * tap);
    }
  }
}

#define BYTELM_INSTANTIATE(T)                                                                     \
  template void causal_conv_forward<T>(T*, const T*, const T*, const T*, int, int, int, int, T*); \
  template void causal_conv_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, int, int, int, int); \
  template void causal_conv_init_s4d_lin<T>(T*, int, int, int, Rng&);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(double)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
