#include "layers/scaled_add.h"

namespace bytelm {

template <class T>
void scaled_add_forward(T* y, const T* x, const T* w, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) y[i] += w[0] * x[i];
}

template <class T>
void scaled_add_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, size_t n) {
  T s = 0;
  for (size_t i = 0; i < n; i++) {
    s += dy[i] * x[i];
    dx[i] = w[0] * dy[i];
  }
  dw[0] += s;
}

template void scaled_add_forward<float>(float*, const float*, const float*, size_t);
template void scaled_add_forward<double>(double*, const double*, const double*, size_t);
template void scaled_add_backward<float>(float*, float*, const float*, const float*, const float*, size_t);
template void scaled_add_backward<double>(double*, double*, const double*, const double*, const double*, size_t);

}  // namespace bytelm
