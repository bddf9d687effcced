// SwiGLU MLP: [a | b] = x W12^T (hidden H each), m = silu(a) * b, y = m W3^T.
#pragma once

namespace bytelm {

// y = residual + SwiGLU(x) when residual ([N, d]) is given (a block's skip connection), else SwiGLU(x); the
// residual's gradient is the output's. g [N, 2H] and m [N, H] are kept for the backward.
template <class T>
void swiglu_forward(T* y, T* g, T* m, const T* x, const T* W12, const T* W3, int N, int d, int H, const T* residual);

// dx = d/dx (overwrites), dW12 and dW3 accumulate. scratch: [N*3H].
template <class T>
void swiglu_backward(T* dx, T* dW12, T* dW3, const T* dy, const T* x, const T* g, const T* m, const T* W12,
                     const T* W3, int N, int d, int H, T* scratch);

}  // namespace bytelm
