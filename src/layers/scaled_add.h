// y += w * x for a learned scalar w: the transformer's U-Net skip connections (models/transformer.cpp).
#pragma once
#include <cstddef>

namespace bytelm {

template <class T>
void scaled_add_forward(T* y, const T* x, const T* w, size_t n);

// dx = w * dy (overwrites); dw[0] += dy . x, summed in index order.
template <class T>
void scaled_add_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, size_t n);

}  // namespace bytelm
