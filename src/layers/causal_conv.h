// Depthwise causal convolution over time, with bias and SiLU: Mamba's short convolution
// (causal_conv1d(x, w, b, activation="silu")). Per channel c of [B, T, C] rows:
//   y[t, c] = silu(bias[c] + sum_k w[c, k] * x[t - (K-1) + k, c]),   k = 0..K-1
// so w[c, K-1] weighs the current input (PyTorch's Conv1d weight [C, 1, K] with K-1 left padding).
//
// Streaming state: the K-1 inputs before t = 0, [B, K-1, C] oldest first. The forward reads them
// (zeros when state is null) and leaves the last K-1 inputs there, so streaming is the forward at
// T = 1 with the state carried from step to step: O(1) memory in the sequence length.
#pragma once
#include "core/rng.h"

namespace bytelm {

template <class T>
void causal_conv_forward(T* y, const T* x, const T* w, const T* bias, int B, int T_, int C, int K, T* state);

// From a zero state (as training runs): dx = d/dx (overwrites), dw and dbias accumulate. The
// pre-activations are recomputed from x rather than kept.
template <class T>
void causal_conv_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w, const T* bias, int B, int T_,
                          int C, int K);

// The hybrid family's long convolution (any K, e.g. 256) starts from an S4D-Lin kernel: per channel c, the
// taps at lag j = 0..K-1 (w[c, K-1-j]) are dt_c * sum_n Re(C_n exp(dt_c A_n j)) over `modes` complex-conjugate
// pairs with A_n = -1/2 + i pi n (S4D-Lin's diagonal), an Euler step dt_c log-uniform in [1/K, 1] (so the
// decays' half-lives span about 1 to K bytes) and C_n ~ complex normal. The bias is left to the caller.
template <class T>
void causal_conv_init_s4d_lin(T* w, int C, int K, int modes, Rng& rng);

}  // namespace bytelm
