// SmearGate: each position blends in the previous position's input through a learned, input-dependent gate:
//   y_t = x_t + lambda * sigmoid(w . x_t[0:k]) * x_{t-1},   y_0 = x_0 (nothing before the window)
// with w [k] and the scalar lambda learned (both zero at init, so the layer starts as the identity). The gate
// reads the current position only and x_{t-1} is the un-smeared input, so the layer is causal and not
// recursive. On bytes it lets the model see the previous byte's embedding directly, as a bigram would.
// x, y: [B, T, d]; gate [B, T] (the sigmoids) is kept for the backward.
#pragma once

namespace bytelm {

// prev [B, d] (or null) is the input at position -1 of each row, for a stream that continues past a step;
// null means the window starts the sequence. y must not alias x.
template <class T>
void smear_forward(T* y, T* gate, const T* x, const T* w, const T* lambda, int B, int T_, int d, int k, const T* prev);

// From the start of the sequence (prev null), as training runs: dx overwritten, dw [k] and dlambda [1] accumulate.
template <class T>
void smear_backward(T* dx, T* dw, T* dlambda, const T* dy, const T* x, const T* gate, const T* w, const T* lambda,
                    int B, int T_, int d, int k);

}  // namespace bytelm
