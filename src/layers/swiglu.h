// SwiGLU MLP: [a | b] = x W12^T (hidden H each), m = silu(a) * b, y = m W3^T.
#pragma once
#include <cstddef>

namespace bytelm {

// m [N, H] = silu(a) * b for g = [a | b] [N, 2H].
template <class T>
void swiglu_gate_forward(T* m, const T* g, int N, int H);

// y = residual + SwiGLU(x) when residual ([N, d]) is given (a block's skip connection), else SwiGLU(x); the
// residual's gradient is the output's. g [N, 2H] and m [N, H] are kept for the backward. The two products are
// product(y, x, W, N, in, out), y = x W^T: linear_forward in swiglu_forward; the CPU backend passes its own
// (cpu_ops.h: a quantized checkpoint's weights read as 8-bit codes).
template <class T, class Product>
void swiglu_forward_with(const Product& product, T* y, T* g, T* m, const T* x, const T* W12, const T* W3, int N, int d,
                         int H, const T* residual) {
  product(g, x, W12, N, d, 2 * H);
  swiglu_gate_forward(m, g, N, H);
  product(y, m, W3, N, H, d);
  if (residual)
    for (size_t i = 0; i < (size_t)N * d; i++) y[i] += residual[i];
}

template <class T>
void swiglu_forward(T* y, T* g, T* m, const T* x, const T* W12, const T* W3, int N, int d, int H, const T* residual);

// dx = d/dx (overwrites), dW12 and dW3 accumulate. scratch: [N*3H].
template <class T>
void swiglu_backward(T* dx, T* dW12, T* dW3, const T* dy, const T* x, const T* g, const T* m, const T* W12,
                     const T* W3, int N, int d, int H, T* scratch);

}  // namespace bytelm
