// The transformer's MLP: h = x W1^T (hidden H), a = leaky_relu(h, leak)^2, y = a W2^T.
// leaky_relu(h, leak) = h for h > 0, leak * h otherwise; leak = 0 is the ReLU^2 of the PyTorch peer, and the
// default 0.5 keeps a (quarter-strength) gradient for negative pre-activations.
#pragma once
#include <cstddef>

namespace bytelm {

// a = leaky_relu(h, leak)^2 over n elements.
template <class T>
void mlp_activation_forward(T* a, const T* h, size_t n, T leak);

// h and a [N, H] are kept for the backward. The two products are product(y, x, W, N, in, out), y = x W^T:
// linear_forward in mlp_forward; the CPU backend passes its own (cpu_ops.h, as for swiglu_forward_with).
template <class T, class Product>
void mlp_forward_with(const Product& product, T* y, T* h, T* a, const T* x, const T* W1, const T* W2, int N, int d,
                      int H, T leak) {
  product(h, x, W1, N, d, H);
  mlp_activation_forward(a, h, (size_t)N * H, leak);
  product(y, a, W2, N, H, d);
}

template <class T>
void mlp_forward(T* y, T* h, T* a, const T* x, const T* W1, const T* W2, int N, int d, int H, T leak);

// dx = d/dx (overwrites), dW1 and dW2 accumulate. scratch: [N*H].
template <class T>
void mlp_backward(T* dx, T* dW1, T* dW2, const T* dy, const T* x, const T* h, const T* a, const T* W1, const T* W2,
                  int N, int d, int H, T leak, T* scratch);

}  // namespace bytelm
