#include "layers/silu_gate.h"

#include "layers/activations.h"

namespace bytelm {

template <class T>
void silu_gate_forward(T* y, const T* v, const T* z, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) y[i] = v[i] * silu(z[i]);
}

template <class T>
void silu_gate_backward(T* dv, T* dz, const T* dy, const T* v, const T* z, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    dv[i] = dy[i] * silu(z[i]);
    dz[i] = dy[i] * v[i] * silu_grad(z[i]);
  }
}

template void silu_gate_forward<float>(float*, const float*, const float*, size_t);
template void silu_gate_forward<double>(double*, const double*, const double*, size_t);
template void silu_gate_backward<float>(float*, float*, const float*, const float*, const float*, size_t);
template void silu_gate_backward<double>(double*, double*, const double*, const double*, const double*, size_t);

}  // namespace bytelm
