#include "layers/smear.h"

#include <algorithm>
#include <vector>

#include "core/parallel.h"
#include "layers/activations.h"
#include "layers/dot.h"

namespace bytelm {

template <class T>
void smear_forward(T* y, T* gate, const T* x, const T* w, const T* lambda, int B, int T_, int d, int k, const T* prev) {
#pragma omp parallel for schedule(static) if ((size_t)B * T_ * d > 65536)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T_; t++) {
      size_t row = (size_t)b * T_ + t;
      const T* xt = x + row * d;
      const T* before = t > 0 ? xt - d : prev ? prev + (size_t)b * d : nullptr;
      T* yt = y + row * d;
      T g = before ? sigmoid(dot(w, xt, k)) : T(0);
      gate[row] = g;
      T c = lambda[0] * g;
      for (int i = 0; i < d; i++) yt[i] = before ? xt[i] + c * before[i] : xt[i];
    }
}

template <class T>
void smear_backward(T* dx, T* dw, T* dlambda, const T* dy, const T* x, const T* gate, const T* w, const T* lambda,
                    int B, int T_, int d, int k) {
  // per-thread partials: dw [k], then dlambda
  std::vector<T> part((size_t)k + 1, T(0));
  parallel_rows_reduce(B, k + 1, part.data(), [&](int b, T* mine) {
    for (int t = 0; t < T_; t++) {
      size_t row = (size_t)b * T_ + t;
      const T* dyt = dy + row * d;
      T* dxt = dx + row * d;
      std::copy(dyt, dyt + d, dxt);
      if (t + 1 < T_) {  // x_t is also position t+1's previous input
        T c = lambda[0] * gate[row + 1];
        for (int i = 0; i < d; i++) dxt[i] += c * dyt[d + i];
      }
      if (t == 0) continue;
      T g = gate[row], through = dot(dyt, x + (row - 1) * d, d);  // d(loss)/d(lambda g)
      mine[k] += g * through;
      T s = lambda[0] * g * (T(1) - g) * through;  // d(loss)/d(w . x_t[0:k])
      const T* xt = x + row * d;
      for (int i = 0; i < k; i++) {
        mine[i] += s * xt[i];
        dxt[i] += s * w[i];
      }
    }
  });
  for (int i = 0; i < k; i++) dw[i] += part[i];
  dlambda[0] += part[k];
}

#define BYTELM_INSTANTIATE(T)                                                                         \
  template void smear_forward<T>(T*, T*, const T*, const T*, const T*, int, int, int, int, const T*); \
  template void smear_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int, int, int, int);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(double)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
