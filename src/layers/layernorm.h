// LayerNorm over the last dimension C with weight and bias (eps 1e-5).
#pragma once

namespace bytelm {

// y = (x - mean) * rstd * w + b per row; mean and rstd ([N]) are kept for the backward.
template <class T>
void layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int N, int C);

// dx (+)= d/dx, dw += sum dy*xhat, db += sum dy.
template <class T>
void layernorm_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* mean, const T* rstd, const T* w, int N,
                        int C, bool accumulate_dx);

}  // namespace bytelm
