// Scalar activations shared by the CPU layers (fp32 and fp64).
#pragma once
#include <cmath>

namespace bytelm {

template <class T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// log(1 + e^x), exact to rounding past x = 20 where it equals x.
template <class T>
T softplus(T x) {
  return x > T(20) ? x : std::log1p(std::exp(x));
}

// The x with softplus(x) = y > 0, in a form that stays accurate for small y: log(e^y - 1) = y + log(1 - e^-y).
template <class T>
T inverse_softplus(T y) {
  return y + std::log(-std::expm1(-y));
}

template <class T>
T silu(T x) {
  return x * sigmoid(x);
}

// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x).
template <class T>
T silu_grad(T x) {
  T s = sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}

}  // namespace bytelm
