#include "layers/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "layers/dot.h"

namespace bytelm {

namespace {

// o [Dh] = sum_j softmax_j(scale q . key(j)) value(j) over j = 0..n-1, in that order; returns the log-sum-exp of
// the scaled scores. p [n] is scratch. The parallel forward and the streaming step both attend through here.
template <class T, class KeyAt, class ValueAt>
T attend(T* o, const T* q, int n, KeyAt key, ValueAt value, int Dh, T scale, T* p) {
  T m = -INFINITY;
  for (int j = 0; j < n; j++) m = std::max(m, p[j] = scale * dot(q, key(j), Dh));
  T z = 0;
  for (int j = 0; j < n; j++) z += p[j] = std::exp(p[j] - m);
  std::fill(o, o + Dh, T(0));
  for (int j = 0; j < n; j++) {
    const T* vj = value(j);
    for (int i = 0; i < Dh; i++) o[i] += p[j] / z * vj[i];
  }
  return m + std::log(z);
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
      auto key = [&](int j) { return qkv_row(k, j); };
      auto value = [&](int j) { return qkv_row(v, j); };
      for (int t = 0; t < s.T; t++) {
        T* ot = o + ((size_t)b * s.T + t) * D + (size_t)h * s.Dh;
        lse[((size_t)b * s.H + h) * s.T + t] = attend(ot, qkv_row(q, t), t + 1, key, value, s.Dh, scale, p.data());
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

template <class T>
void attention_decode(T* o, T* k_cache, T* v_cache, const T* q, const T* k, const T* v, int qkv_stride, int B, int H,
                      int Dh, int slots, int pos, T scale) {
  const int D = H * Dh, first = std::max(0, pos - slots + 1), n = pos - first + 1;
  for (int b = 0; b < B; b++) {
    size_t at = ((size_t)b * slots + pos % slots) * D, from = (size_t)b * qkv_stride;
    std::copy(k + from, k + from + D, k_cache + at);
    std::copy(v + from, v + from + D, v_cache + at);
  }
  std::vector<T> p(n);
#pragma omp parallel for collapse(2) schedule(static) firstprivate(p) if ((size_t)B * H * n * Dh > 65536)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      // the j-th oldest position still cached, first + j, sits in slot (first + j) % slots
      auto slot = [&](const T* cache, int j) {
        return cache + ((size_t)b * slots + (first + j) % slots) * D + (size_t)h * Dh;
      };
      auto key = [&](int j) { return slot(k_cache, j); };
      auto value = [&](int j) { return slot(v_cache, j); };
      attend(o + (size_t)b * D + (size_t)h * Dh, q + (size_t)b * qkv_stride + (size_t)h * Dh, n, key, value, Dh,
             scale, p.data());
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
template void attention_decode<float>(float*, float*, float*, const float*, const float*, const float*, int, int, int,
                                      int, int, int, float);
template void attention_decode<double>(double*, double*, double*, const double*, const double*, const double*, int, int,
                                       int, int, int, int, double);

}  // namespace bytelm
