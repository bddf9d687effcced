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

// The ssm block's residual sum and its next LayerNorm in one pass:
//   q = x + y + D * z  (x the block's input, y the SSM's output, z the LayerNorm output y was computed from, D the
//                       SSM's diagonal skip),  then  out = LN(q)  with mean and rstd kept.
// q may be y (overwritten in place).
template <class T>
void skip_layernorm_forward(T* q, T* out, T* mean, T* rstd, const T* x, const T* y, const T* z, const T* D, const T* w,
                            const T* b, int N, int C);

// The skip's part of skip_layernorm_forward's backward, g the gradient at q (which is also x's and y's):
//   dz += D * g,  dD += sum g*z.
template <class T>
void skip_sum_backward(T* dz, T* dD, const T* g, const T* z, const T* D, int N, int C);

// skip_sum_backward and the backward of the LayerNorm that made z (z = LN(x)), in one call, as the ssm block's
// backward needs them: on entry dx holds g (the gradient at q, and x's through the residual) and dz the gradient
// at z from all but the skip. Then dz += D g, dD += sum g z, dx = g + d/dx of LN with dy = dz, and dw, db as in
// layernorm_backward. dz is left changed (the CPU code keeps the sum there; the CUDA code leaves it as it was).
template <class T>
void skip_sum_layernorm_backward(T* dx, T* dw, T* db, T* dD, T* dz, const T* x, const T* z, const T* D, const T* mean,
                                 const T* rstd, const T* w, int N, int C);

}  // namespace bytelm
