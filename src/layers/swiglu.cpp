#include "layers/swiglu.h"

#include <cmath>

#include "layers/linear.h"

namespace bytelm {

template <class T>
void swiglu_gate_forward(T* m, const T* g, int N, int H) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++)
    for (int k = 0; k < H; k++) {
      T a = g[(size_t)i * 2 * H + k], b = g[(size_t)i * 2 * H + H + k];
      m[(size_t)i * H + k] = a / (T(1) + std::exp(-a)) * b;
    }
}

template <class T>
void swiglu_forward(T* y, T* g, T* m, const T* x, const T* W12, const T* W3, int N, int d, int H, const T* residual) {
  swiglu_forward_with(LinearProduct{}, y, g, m, x, W12, W3, N, d, H, residual);
}

template <class T>
void swiglu_backward(T* dx, T* dW12, T* dW3, const T* dy, const T* x, const T* g, const T* m, const T* W12,
                     const T* W3, int N, int d, int H, T* scratch) {
  T* dm = scratch;                     // [N, H]
  T* dg = scratch + (size_t)N * H;     // [N, 2H]
  linear_backward(dm, dW3, dy, m, W3, N, H, d, false);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++)
    for (int k = 0; k < H; k++) {
      T a = g[(size_t)i * 2 * H + k], b = g[(size_t)i * 2 * H + H + k];
      T s = T(1) / (T(1) + std::exp(-a));
      T dmi = dm[(size_t)i * H + k];
      dg[(size_t)i * 2 * H + k] = dmi * b * s * (T(1) + a * (T(1) - s));  // silu'(a) = s (1 + a (1 - s))
      dg[(size_t)i * 2 * H + H + k] = dmi * a * s;
    }
  linear_backward(dx, dW12, dg, x, W12, N, d, 2 * H, false);
}

#define BYTELM_INSTANTIATE(T)                                                                              \
  template void swiglu_gate_forward<T>(T*, const T*, int, int);                                                  \
  template void swiglu_forward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, int, const T*);            \
  template void swiglu_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const T*, \
                                   int, int, int, T*);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(double)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
