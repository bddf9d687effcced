#include "layers/softcap.h"

#include <cmath>

namespace bytelm {

template <class T>
void softcap_forward(T* y, const T* x, size_t n, T cap) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) y[i] = cap * std::tanh(x[i] / cap);
}

template <class T>
void softcap_backward(T* dx, const T* dy, const T* x, size_t n, T cap) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    T t = std::tanh(x[i] / cap);
    dx[i] = dy[i] * (T(1) - t * t);
  }
}

template void softcap_forward<float>(float*, const float*, size_t, float);
template void softcap_forward<double>(double*, const double*, size_t, double);
template void softcap_backward<float>(float*, const float*, const float*, size_t, float);
template void softcap_backward<double>(double*, const double*, const double*, size_t, double);

}  // namespace bytelm
