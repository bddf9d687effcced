// A SiLU gate: y = v * silu(z), elementwise over n values (the hybrid's long-convolution block gates its output
// so, as Mamba gates its scan).
#pragma once
#include <cstddef>

namespace bytelm {

template <class T>
void silu_gate_forward(T* y, const T* v, const T* z, size_t n);

// dv and dz are overwritten.
template <class T>
void silu_gate_backward(T* dv, T* dz, const T* dy, const T* v, const T* z, size_t n);

}  // namespace bytelm
