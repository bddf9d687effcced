// Linear map without bias, PyTorch layout: y[N,out] = x[N,in] W[out,in]^T.
#pragma once

namespace bytelm {

template <class T>
void linear_forward(T* y, const T* x, const T* W, int N, int in, int out);

// linear_forward as a function object: the product composite layers (swiglu.h, mlp.h, diag_ssm.h) take by default.
struct LinearProduct {
  template <class T>
  void operator()(T* y, const T* x, const T* W, int N, int in, int out) const {
    linear_forward(y, x, W, N, in, out);
  }
};

// dW += dy^T x;  dx = dy W (or dx += dy W when accumulate_dx). dx may be null.
template <class T>
void linear_backward(T* dx, T* dW, const T* dy, const T* x, const T* W, int N, int in, int out, bool accumulate_dx);

}  // namespace bytelm
