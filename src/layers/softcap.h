// Logit soft-capping: y = cap * tanh(x / cap), which bounds the logits to (-cap, cap) while leaving small ones
// almost unchanged (y ~ x for |x| << cap). Applied to the head's logits before the cross-entropy.
#pragma once
#include <cstddef>

namespace bytelm {

// y may alias x.
template <class T>
void softcap_forward(T* y, const T* x, size_t n, T cap);

// dx = dy * (1 - tanh(x / cap)^2), from the uncapped x (the cross-entropy's gradient overwrites the capped
// logits in place); dx may alias dy.
template <class T>
void softcap_backward(T* dx, const T* dy, const T* x, size_t n, T cap);

}  // namespace bytelm
