#include "layers/mlp.h"

#include <cstddef>

#include "layers/linear.h"

namespace bytelm {

template <class T>
void mlp_activation_forward(T* a, const T* h, size_t n, T leak) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    T r = h[i] > T(0) ? h[i] : leak * h[i];
    a[i] = r * r;
  }
}

template <class T>
void mlp_forward(T* y, T* h, T* a, const T* x, const T* W1, const T* W2, int N, int d, int H, T leak) {
  mlp_forward_with(LinearProduct{}, y, h, a, x, W1, W2, N, d, H, leak);
}

template <class T>
void mlp_backward(T* dx, T* dW1, T* dW2, const T* dy, const T* x, const T* h, const T* a, const T* W1, const T* W2,
                  int N, int d, int H, T leak, T* scratch) {
  T* dh = scratch;  // da first, then dh in place
  linear_backward(dh, dW2, dy, a, W2, N, H, d, false);
  size_t n = (size_t)N * H;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    // d/dh (s h)^2 = 2 s^2 h, s = 1 or leak
    T s = h[i] > T(0) ? T(1) : leak;
    dh[i] *= T(2) * s * s * h[i];
  }
  linear_backward(dx, dW1, dh, x, W1, N, d, H, false);
}

#define BYTELM_INSTANTIATE(T)                                                                                          \
  template void mlp_activation_forward<T>(T*, const T*, size_t, T);                                                    \
  template void mlp_forward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, int, T);                            \
  template void mlp_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const T*, int, int, int, \
                                T, T*);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(double)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
