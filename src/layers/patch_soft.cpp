#include "layers/patch_soft.h"

#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "layers/patch.h"

namespace bytelm {

template <class T>
void patch_soft_forward(T* p, T* n, T* z, T* keep, const T* e, const T* w, const T* c, int B, int T_, int P, int d,
                        T* state) {
  int Np = patch_count(T_, P);
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++) {
    T* n_state = state ? state + (size_t)b * d : nullptr;
    T* z_state = state ? state + (size_t)B * d + b : nullptr;
    const T* n_prev = n_state;  // n_{t-1}, z_{t-1}: the state before byte 0, or zero
    T z_prev = z_state ? *z_state : T(0);
    for (int t = 0; t < T_; t++) {
      size_t i = (size_t)b * T_ + t;
      const T* et = e + i * d;
      T score = c[0];
      for (int k = 0; k < d; k++) score += w[k] * et[k];
      T k_t = keep[i] = T(1) / (T(1) + std::exp(score));  // 1 - sigmoid(score), without cancelling
      T* nt = n + i * d;
      for (int k = 0; k < d; k++) nt[k] = (n_prev ? k_t * n_prev[k] : T(0)) + et[k];
      z_prev = z[i] = k_t * z_prev + T(1);
      n_prev = nt;
      if ((t + 1) % P == 0 && (t + 1) / P <= Np) {
        T* pj = p + ((size_t)b * Np + (t + 1) / P - 1) * d;
        for (int k = 0; k < d; k++) pj[k] = nt[k] / z_prev;
      }
    }
    if (state && T_ > 0) {
      for (int k = 0; k < d; k++) n_state[k] = n_prev[k];
      *z_state = z_prev;
    }
  }
}

// Backward through the scan, last byte first, with gn = d/dn_t and gz = d/dz_t (what later bytes send back, times
// k_{t+1}, plus the patch read at t): de_t += gn; dk_t = gn . n_{t-1} + gz z_{t-1}; and through the sigmoid,
// dk/dscore = -k (1 - k), the score's gradient reaches e_t, w and c.
template <class T>
void patch_soft_backward(T* de, T* dw, T* dc, const T* dp, const T* e, const T* w, const T* n, const T* z,
                         const T* keep, int B, int T_, int P, int d) {
  int Np = patch_count(T_, P);
  std::vector<T> dwc(d + 1, T(0));  // dw then dc, summed over the rows in a fixed order
  parallel_rows_reduce(B, d + 1, dwc.data(), [&](int b, T* part) {
    std::vector<T> gn(d, T(0));
    T gz = 0;
    for (int t = T_ - 1; t >= 0; t--) {
      size_t i = (size_t)b * T_ + t;
      const T* nt = n + i * d;
      if ((t + 1) % P == 0 && (t + 1) / P <= Np) {  // p_j = n_t / z_t
        const T* g = dp + ((size_t)b * Np + (t + 1) / P - 1) * d;
        T g_dot_n = 0;
        for (int k = 0; k < d; k++) {
          gn[k] += g[k] / z[i];
          g_dot_n += g[k] * nt[k];
        }
        gz -= g_dot_n / (z[i] * z[i]);
      }
      T* det = de + i * d;
      T dk = t > 0 ? gz * z[i - 1] : T(0);
      for (int k = 0; k < d; k++) {
        det[k] += gn[k];
        if (t > 0) dk += gn[k] * nt[k - d];
        gn[k] *= keep[i];
      }
      gz *= keep[i];
      T dscore = -dk * keep[i] * (T(1) - keep[i]);
      const T* et = e + i * d;
      for (int k = 0; k < d; k++) {
        det[k] += dscore * w[k];
        part[k] += dscore * et[k];
      }
      part[d] += dscore;
    }
  });
  for (int k = 0; k < d; k++) dw[k] += dwc[k];
  dc[0] += dwc[d];
}

#define BYTELM_INSTANTIATE(T)                                                                                      \
  template void patch_soft_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*, int, int, int, int, T*);      \
  template void patch_soft_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const T*, int, \
                                       int, int, int);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(double)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
