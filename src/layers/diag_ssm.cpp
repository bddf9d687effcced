#include "layers/diag_ssm.h"

#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "layers/activations.h"
#include "layers/linear.h"

namespace bytelm {

namespace {

template <class T>
std::vector<T> decay_of(const T* lam, int d) {
  std::vector<T> a(d);
  for (int c = 0; c < d; c++) a[c] = std::exp(-softplus(lam[c]));
  return a;
}

}  // namespace

template <class T>
void diag_ssm_init_decay(T* lam, int d, int patch) {
  for (int c = 0; c < d; c++) {
    double half_life_bytes = d > 1 ? std::pow(2048.0, double(c) / (d - 1)) : 1.0;
    double neg_log_a = std::log(2.0) / (half_life_bytes / patch);  // = softplus(lam)
    lam[c] = T(std::log(std::expm1(neg_log_a)));
  }
}

template <class T>
void diag_scan_forward(T* h, const T* u, const T* lam, int B, int T_, int d, const T* h0) {
  std::vector<T> a = decay_of(lam, d);
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++) {
    const T* ub = u + (size_t)b * T_ * d;
    T* hb = h + (size_t)b * T_ * d;
    for (int c = 0; c < d; c++) hb[c] = (h0 ? a[c] * h0[(size_t)b * d + c] : T(0)) + (T(1) - a[c]) * ub[c];
    for (int t = 1; t < T_; t++)
      for (int c = 0; c < d; c++)
        hb[(size_t)t * d + c] = a[c] * hb[(size_t)(t - 1) * d + c] + (T(1) - a[c]) * ub[(size_t)t * d + c];
  }
}

template <class T>
void diag_scan_backward(T* dh_to_du, T* dlam, const T* u, const T* h, const T* lam, int B, int T_, int d) {
  std::vector<T> a = decay_of(lam, d);
  std::vector<T> da(d, T(0));
  // g_t = dh_t + a * g_{t+1};  du_t = (1 - a) g_t;  da += g_t * (h_{t-1} - u_t)
  parallel_rows_reduce(B, d, da.data(), [&](int b, T* da_part) {
    const T* ub = u + (size_t)b * T_ * d;
    const T* hb = h + (size_t)b * T_ * d;
    T* gb = dh_to_du + (size_t)b * T_ * d;
    std::vector<T> carry(d, T(0));
    for (int t = T_ - 1; t >= 0; t--) {
      for (int c = 0; c < d; c++) {
        size_t i = (size_t)t * d + c;
        T g = gb[i] + a[c] * carry[c];
        T h_prev = t > 0 ? hb[i - d] : T(0);
        da_part[c] += g * (h_prev - ub[i]);
        carry[c] = g;
        gb[i] = (T(1) - a[c]) * g;
      }
    }
  });
  for (int c = 0; c < d; c++) dlam[c] += da[c] * (-a[c] * sigmoid(lam[c]));  // da/dlam = -a * sigmoid(lam)
}

template <class T>
void diag_ssm_forward(T* y, T* u, T* h, const T* x, DiagSsmWeights<T> w, int B, int T_, int d, const T* h0, T* h_last) {
  diag_ssm_forward_with(LinearProduct{}, y, u, h, x, w, B, T_, d, h0, h_last);
}

template <class T>
void diag_ssm_backward(T* dx, DiagSsmGrads<T> g, const T* dy, const T* x, const T* u, const T* h, DiagSsmWeights<T> w,
                       int B, int T_, int d, T* scratch) {
  int N = B * T_;
  T* dh = scratch;
  linear_backward(dh, g.W_out, dy, h, w.W_out, N, d, d, false);
  diag_scan_backward(dh, g.lam, u, h, w.lam, B, T_, d);
  linear_backward(dx, g.W_in, dh, x, w.W_in, N, d, d, false);
}

#define BYTELM_INSTANTIATE(T)                                                                                        \
  template void diag_ssm_init_decay<T>(T*, int, int);                                                                \
  template void diag_scan_forward<T>(T*, const T*, const T*, int, int, int, const T*);                               \
  template void diag_scan_backward<T>(T*, T*, const T*, const T*, const T*, int, int, int);                          \
  template void diag_ssm_forward<T>(T*, T*, T*, const T*, DiagSsmWeights<T>, int, int, int, const T*, T*);           \
  template void diag_ssm_backward<T>(T*, DiagSsmGrads<T>, const T*, const T*, const T*, const T*, DiagSsmWeights<T>, \
                                     int, int, int, T*);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(double)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
