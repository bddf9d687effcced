#include "layers/patch.h"

#include <cstring>

#include "core/parallel.h"

namespace bytelm {

template <class T>
void patch_mean_forward(T* p, const T* e, int B, int T_, int P, int d) {
  int Np = patch_count(T_, P);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int j = 0; j < Np; j++) {
      T* pj = p + ((size_t)b * Np + j) * d;
      for (int c = 0; c < d; c++) pj[c] = 0;
      for (int r = 0; r < P; r++) {
        const T* et = e + ((size_t)b * T_ + (size_t)j * P + r) * d;
        for (int c = 0; c < d; c++) pj[c] += et[c];
      }
      for (int c = 0; c < d; c++) pj[c] /= P;
    }
}

template <class T>
void patch_mean_backward(T* de, const T* dp, int B, int T_, int P, int d) {
  int Np = patch_count(T_, P);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int j = 0; j < Np; j++) {
      const T* dpj = dp + ((size_t)b * Np + j) * d;
      for (int r = 0; r < P; r++) {
        T* det = de + ((size_t)b * T_ + (size_t)j * P + r) * d;
        for (int c = 0; c < d; c++) det[c] += dpj[c] / P;
      }
    }
}

template <class T>
void patch_broadcast_forward(T* out, const T* p, const T* start, const T* e, int B, int T_, int P, int d) {
  int Np = patch_count(T_, P);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T_; t++) {
      int k = patch_source(t, P);
      const T* src = k >= 0 ? p + ((size_t)b * Np + k) * d : start;
      size_t o = ((size_t)b * T_ + t) * d;
      for (int c = 0; c < d; c++) out[o + c] = src[c] + e[o + c];
    }
}

template <class T>
void patch_broadcast_backward(T* dp, T* dstart, T* de, const T* dout, int B, int T_, int P, int d) {
  int Np = patch_count(T_, P);
  std::memcpy(de, dout, sizeof(T) * (size_t)B * T_ * d);
  // A patch k is read by the bytes t with (t + 1) / P - 1 == k, i.e. t in [(k+1)P - 1, (k+2)P - 1).
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int k = 0; k < Np; k++) {
      T* dpk = dp + ((size_t)b * Np + k) * d;
      for (int c = 0; c < d; c++) dpk[c] = 0;
      int t_end = (k + 2) * P - 1 < T_ ? (k + 2) * P - 1 : T_;
      for (int t = (k + 1) * P - 1; t < t_end; t++)
        for (int c = 0; c < d; c++) dpk[c] += dout[((size_t)b * T_ + t) * d + c];
    }
  int t_start_end = P - 1 < T_ ? P - 1 : T_;  // bytes that read `start`
  parallel_rows_reduce(B, d, dstart, [&](int b, T* part) {
    for (int t = 0; t < t_start_end; t++)
      for (int c = 0; c < d; c++) part[c] += dout[((size_t)b * T_ + t) * d + c];
  });
}

#define BYTELM_INSTANTIATE(T)                                                                    \
  template void patch_mean_forward<T>(T*, const T*, int, int, int, int);                       \
  template void patch_mean_backward<T>(T*, const T*, int, int, int, int);                      \
  template void patch_broadcast_forward<T>(T*, const T*, const T*, const T*, int, int, int, int); \
  template void patch_broadcast_backward<T>(T*, T*, T*, const T*, int, int, int, int);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(double)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
