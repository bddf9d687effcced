#include "layers/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace bytelm {

namespace {

template <class T>
T dot(const T* a, const T* b, int n) {
  T s = 0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

}  // namespace

template <class T>
void attention_forward(T* o, T* lse, const T* q, const T* k, const T* v, AttentionShape s, T scale) {
  const int ld = s.stride(), D = s.H * s.Dh;
  std::vector<T> p(s.T);
#pragma omp parallel for collapse(2) schedule(static) firstprivate(p)
  for (int b = 0; b < s.B; b++)
    for (int h = 0; h < s.H; h++) {
      auto qkv_row = [&](const T* base, int t) { return base + ((size_t)b * s.T + t) * ld + (size_t)h * s.Dh; };
      for (int t = 0; t < s.T; t++) {
        const T* qt = qkv_row(q, t);
        T m = -INFINITY;
        for (int j = 0; j <= t; j++) m = std::max(m, p[j] = scale * dot(qt, qkv_row(k, j), s.Dh));
        T z = 0;
        for (int j = 0; j <= t; j++) z += p[j] = std::exp(p[j] - m);
        T* ot = o + ((size_t)b * s.T + t) * D + (size_t)h * s.Dh;
        std::fill(ot, ot + s.Dh, T(0));
        for (int j = 0; j <= t; j++) {
          const T* vj = qkv_row(v, j);
          for (int i = 0; i < s.Dh; i++) ot[i] += p[j] / z * vj[i];
        }
        lse[((size_t)b * s.H + h) * s.T + t] = m + std::log(z);
      }
    }
}

// With P = softmax(scale Q K^T) (causal) and O = P V:
//   dV = P^T dO;  dP = dO V^T;  dS = P * (dP - delta), delta_t = rowsum(dO_t * O_t);  dQ = scale dS K;  dK = scale dS^T Q.
template <class T>
void attention_backward(T* dq, T* dk, T* dv, T* delta, const T* dout, const T* q, const T* k, const T* v, const T* o,
                        const T* lse, AttentionShape s, T scale) {
  const int ld = s.stride(), D = s.H * s.Dh;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < s.B; b++)
    for (int h = 0; h < s.H; h++) {
      auto at = [&](auto* base, int t) { return base + ((size_t)b * s.T + t) * ld + (size_t)h * s.Dh; };
      auto dense = [&](auto* base, int t) { return base + ((size_t)b * s.T + t) * D + (size_t)h * s.Dh; };
      const T* row_lse = lse + ((size_t)b * s.H + h) * s.T;
      T* row_delta = delta + ((size_t)b * s.H + h) * s.T;
      for (int t = 0; t < s.T; t++) {
        std::fill(at(dq, t), at(dq, t) + s.Dh, T(0));
        std::fill(at(dk, t), at(dk, t) + s.Dh, T(0));
        std::fill(at(dv, t), at(dv, t) + s.Dh, T(0));
        row_delta[t] = dot(dense(dout, t), dense(o, t), s.Dh);
      }
      for (int t = 0; t < s.T; t++) {
        const T* qt = at(q, t);
        const T* dot_t = dense(dout, t);
        for (int j = 0; j <= t; j++) {
          T pj = std::exp(scale * dot(qt, at(k, j), s.Dh) - row_lse[t]);
          T dp = dot(dot_t, at(v, j), s.Dh);
          T ds = pj * (dp - row_delta[t]);
          T* dvj = at(dv, j);
          T* dkj = at(dk, j);
          T* dqt = at(dq, t);
          const T* kj = at(k, j);
          for (int i = 0; i < s.Dh; i++) {
            dvj[i] += pj * dot_t[i];
            dkj[i] += scale * ds * qt[i];
            dqt[i] += scale * ds * kj[i];
          }
        }
      }
    }
}

template void attention_forward<float>(float*, float*, const float*, const float*, const float*, AttentionShape, float);
template void attention_forward<double>(double*, double*, const double*, const double*, const double*, AttentionShape,
                                        double);
template void attention_backward<float>(float*, float*, float*, float*, const float*, const float*, const float*,
                                        const float*, const float*, const float*, AttentionShape, float);
template void attention_backward<double>(double*, double*, double*, double*, const double*, const double*,
                                         const double*, const double*, const double*, const double*, AttentionShape,
                                         double);

}  // namespace bytelm
