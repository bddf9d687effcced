#include "layers/linear.h"

#include "core/blas.h"

namespace bytelm {

template <class T>
void linear_forward(T* y, const T* x, const T* W, int N, int in, int out) {
  gemm(false, true, N, out, in, T(1), x, in, W, in, T(0), y, out);
}

template <class T>
void linear_backward(T* dx, T* dW, const T* dy, const T* x, const T* W, int N, int in, int out, bool accumulate_dx) {
  gemm(true, false, out, in, N, T(1), dy, out, x, in, T(1), dW, in);
  if (dx) gemm(false, false, N, in, out, T(1), dy, out, W, in, accumulate_dx ? T(1) : T(0), dx, in);
}

template void linear_forward<float>(float*, const float*, const float*, int, int, int);
template void linear_forward<double>(double*, const double*, const double*, int, int, int);
template void linear_backward<float>(float*, float*, const float*, const float*, const float*, int, int, int, bool);
template void linear_backward<double>(double*, double*, const double*, const double*, const double*, int, int, int,
                                      bool);

}  // namespace bytelm
