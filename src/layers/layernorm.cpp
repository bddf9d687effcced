#include "layers/layernorm.h"

#include <cmath>
#include <vector>

#include "core/parallel.h"

namespace bytelm {

template <class T>
void layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const T* xi = x + (size_t)i * C;
    T m = 0;
    for (int c = 0; c < C; c++) m += xi[c];
    m /= C;
    T v = 0;
    for (int c = 0; c < C; c++) v += (xi[c] - m) * (xi[c] - m);
    T r = T(1) / std::sqrt(v / C + T(1e-5));
    T* yi = y + (size_t)i * C;
    for (int c = 0; c < C; c++) yi[c] = (xi[c] - m) * r * w[c] + b[c];
    mean[i] = m;
    rstd[i] = r;
  }
}

template <class T>
void layernorm_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* mean, const T* rstd, const T* w, int N,
                        int C, bool accumulate_dx) {
  // dw and db are [2C] partial sums per thread (see parallel_rows_reduce).
  std::vector<T> dwb(2 * (size_t)C, T(0));
  parallel_rows_reduce(N, 2 * C, dwb.data(), [&](int i, T* part) {
    const T* xi = x + (size_t)i * C;
    const T* dyi = dy + (size_t)i * C;
    T m = mean[i], r = rstd[i];
    T sum_g = 0, sum_gx = 0;
    for (int c = 0; c < C; c++) {
      T xhat = (xi[c] - m) * r;
      T g = dyi[c] * w[c];
      sum_g += g;
      sum_gx += g * xhat;
      part[c] += dyi[c] * xhat;
      part[C + c] += dyi[c];
    }
    sum_g /= C;
    sum_gx /= C;
    T* dxi = dx + (size_t)i * C;
    for (int c = 0; c < C; c++) {
      T xhat = (xi[c] - m) * r;
      T v = r * (dyi[c] * w[c] - sum_g - xhat * sum_gx);
      dxi[c] = accumulate_dx ? dxi[c] + v : v;
    }
  });
  for (int c = 0; c < C; c++) {
    dw[c] += dwb[c];
    db[c] += dwb[C + c];
  }
}

template <class T>
void skip_layernorm_forward(T* q, T* out, T* mean, T* rstd, const T* x, const T* y, const T* z, const T* D, const T* w,
                            const T* b, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++)
    for (int c = 0; c < C; c++) {
      size_t k = (size_t)i * C + c;
      q[k] = x[k] + y[k] + D[c] * z[k];
    }
  layernorm_forward(out, mean, rstd, q, w, b, N, C);
}

template <class T>
void skip_sum_backward(T* dz, T* dD, const T* g, const T* z, const T* D, int N, int C) {
  parallel_rows_reduce(N, C, dD, [&](int i, T* part) {
    for (int c = 0; c < C; c++) {
      size_t k = (size_t)i * C + c;
      part[c] += g[k] * z[k];
      dz[k] += D[c] * g[k];
    }
  });
}

template <class T>
void skip_sum_layernorm_backward(T* dx, T* dw, T* db, T* dD, T* dz, const T* x, const T* z, const T* D, const T* mean,
                                 const T* rstd, const T* w, int N, int C) {
  skip_sum_backward(dz, dD, dx, z, D, N, C);
  layernorm_backward(dx, dw, db, dz, x, mean, rstd, w, N, C, true);
}

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*, const float*, int, int);
template void layernorm_forward<double>(double*, double*, double*, const double*, const double*, const double*, int,
                                        int);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                        const float*, const float*, int, int, bool);
template void layernorm_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                         const double*, const double*, int, int, bool);
#define BYTELM_INSTANTIATE(T)                                                                                         \
  template void skip_layernorm_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const T*, \
                                          int, int);                                                                  \
  template void skip_sum_backward<T>(T*, T*, const T*, const T*, const T*, int, int);                                \
  template void skip_sum_layernorm_backward<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*, \
                                               const T*, int, int);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(double)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
