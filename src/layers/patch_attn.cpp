#include "layers/patch_attn.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "layers/patch.h"

namespace bytelm {

template <class T>
void patch_attn_forward(T* p, T* weights, const T* e, const T* q, int B, int T_, int P, int d) {
  int Np = patch_count(T_, P);
  T scale = T(1) / std::sqrt(T(d));
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int j = 0; j < Np; j++) {
      const T* ej = e + ((size_t)b * T_ + (size_t)j * P) * d;  // the patch's P byte embeddings, row after row
      T* wj = weights + ((size_t)b * Np + j) * P;
      T* pj = p + ((size_t)b * Np + j) * d;
      // softmax of the scores, shifted by their maximum so exp cannot overflow
      T max_score = -INFINITY;
      for (int r = 0; r < P; r++) {
        T s = 0;
        for (int c = 0; c < d; c++) s += ej[(size_t)r * d + c] * q[c];
        wj[r] = s * scale;
        max_score = std::max(max_score, wj[r]);
      }
      T total = 0;
      for (int r = 0; r < P; r++) total += wj[r] = std::exp(wj[r] - max_score);
      for (int r = 0; r < P; r++) wj[r] /= total;
      for (int c = 0; c < d; c++) pj[c] = 0;
      for (int r = 0; r < P; r++)
        for (int c = 0; c < d; c++) pj[c] += wj[r] * ej[(size_t)r * d + c];
    }
}

// With g = dp of a patch: dw_i = g . e_i, and through the softmax ds_i = w_i (dw_i - sum_k w_k dw_k). Then
// de_i = w_i g + ds_i q / sqrt(d) and dq = sum_i ds_i e_i / sqrt(d).
template <class T>
void patch_attn_backward(T* de, T* dq, const T* dp, const T* e, const T* q, const T* weights, int B, int T_, int P,
                         int d) {
  int Np = patch_count(T_, P);
  T scale = T(1) / std::sqrt(T(d));
  // dq sums over every patch: each sequence adds its part, summed in a fixed order (deterministic).
  parallel_rows_reduce(B, d, dq, [&](int b, T* dq_part) {
    std::vector<T> dw(P);
    for (int j = 0; j < Np; j++) {
      const T* ej = e + ((size_t)b * T_ + (size_t)j * P) * d;
      T* dej = de + ((size_t)b * T_ + (size_t)j * P) * d;
      const T* wj = weights + ((size_t)b * Np + j) * P;
      const T* g = dp + ((size_t)b * Np + j) * d;
      T weighted_dw = 0;  // sum_k w_k dw_k
      for (int r = 0; r < P; r++) {
        dw[r] = 0;
        for (int c = 0; c < d; c++) dw[r] += g[c] * ej[(size_t)r * d + c];
        weighted_dw += wj[r] * dw[r];
      }
      for (int r = 0; r < P; r++) {
        T ds = wj[r] * (dw[r] - weighted_dw) * scale;  // the 1/sqrt(d) of the score folded in
        for (int c = 0; c < d; c++) {
          dej[(size_t)r * d + c] += wj[r] * g[c] + ds * q[c];
          dq_part[c] += ds * ej[(size_t)r * d + c];
        }
      }
    }
  });
}

#define BYTELM_INSTANTIATE(T)                                                                  \
  template void patch_attn_forward<T>(T*, T*, const T*, const T*, int, int, int, int); \
  template void patch_attn_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int, int, int, int);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(double)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
