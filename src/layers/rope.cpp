#include "layers/rope.h"

#include <cmath>
#include <vector>

namespace bytelm {

namespace {

// Rotates every pair by `sign` times its angle. The angles are computed in double, once a call, so a stream
// stepping one position at a time rotates by exactly the values the parallel forward uses.
template <class T>
void rotate(T* x, RopeShape s, double base, double sign) {
  int half = s.Dh / 2, ld = s.row_stride();
  std::vector<T> cos_t((size_t)s.T * half), sin_t((size_t)s.T * half);
  for (int t = 0; t < s.T; t++)
    for (int i = 0; i < half; i++) {
      double angle = double(s.pos0 + t) * std::pow(base, -2.0 * i / s.Dh);
      cos_t[(size_t)t * half + i] = T(std::cos(angle));
      sin_t[(size_t)t * half + i] = T(sign * std::sin(angle));
    }
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)s.B * s.T * s.heads * s.Dh > 65536)
  for (int b = 0; b < s.B; b++)
    for (int t = 0; t < s.T; t++) {
      const T* c = cos_t.data() + (size_t)t * half;
      const T* sn = sin_t.data() + (size_t)t * half;
      T* row = x + ((size_t)b * s.T + t) * ld;
      for (int h = 0; h < s.heads; h++) {
        T* v = row + (size_t)h * s.Dh;
        for (int i = 0; i < half; i++) {
          T x0 = v[2 * i], x1 = v[2 * i + 1];
          v[2 * i] = x0 * c[i] - x1 * sn[i];
          v[2 * i + 1] = x0 * sn[i] + x1 * c[i];
        }
      }
    }
}

}  // namespace

template <class T>
void rope_forward(T* x, RopeShape s, double base) {
  rotate(x, s, base, 1.0);
}

// A rotation's Jacobian is the rotation itself, so the gradient goes back through its transpose: the rotation by
// minus the angle.
template <class T>
void rope_backward(T* dx, RopeShape s, double base) {
  rotate(dx, s, base, -1.0);
}

template void rope_forward<float>(float*, RopeShape, double);
template void rope_forward<double>(double*, RopeShape, double);
template void rope_backward<float>(float*, RopeShape, double);
template void rope_backward<double>(double*, RopeShape, double);

}  // namespace bytelm
