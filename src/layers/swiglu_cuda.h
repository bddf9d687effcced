// CUDA SwiGLU MLP (see swiglu.h): cuBLAS GEMMs around fused elementwise kernels.
//
// The hidden width H = 4d/3 is often odd (1365 at d=1024): rows of that length
// are not 16-byte aligned and cuBLAS leaves its tensor-core kernels for slow
// ones. On the GPU the hidden activations therefore use a padded row stride
// S = swiglu_stride_cuda(H), and W12 and W3 are copied into zero-padded
// copies ([2S, d], [d, S]) for their products, so that every product
// dimension is a multiple of 16; the parameters and their gradients keep the
// CPU layout. The forward makes the copies and the backward reads them (one
// padding a step, not two). Activations and the weights the products read are of the storage
// type A (float or bf16); the weight gradients are fp32.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "layers/linear_cuda.h"

namespace bytelm {

inline int swiglu_stride_cuda(int H) { return (H + 15) / 16 * 16; }
// Elements of the padded weight copies: W12p [2S, d], then W3p [d, S].
inline size_t swiglu_padded_elems_cuda(int d, int H) { return 3 * (size_t)d * swiglu_stride_cuda(H); }
// Floats of the backward's room for a padded weight gradient (dW3p [d, S], later dW12p [2S, d]).
inline size_t swiglu_dw_scratch_floats_cuda(int d, int H) { return 2 * (size_t)d * swiglu_stride_cuda(H); }

// y = residual + SwiGLU(x) when residual is given (the sum in the last product's epilogue: gemm.lt must be set),
// else SwiGLU(x). g [N, 2S] holds a in columns [0, H) and b in [S, S + H); m [N, S] is zero past H. Both are kept
// for the backward, and so is `padded` (swiglu_padded_elems_cuda elements), where the forward writes the padded
// copies of W12 and W3.
template <class A>
void swiglu_forward_cuda(A* y, A* g, A* m, const A* x, const A* W12, const A* W3, int N, int d, int H,
                         const A* residual, A* padded, Gemm gemm, cudaStream_t stream);

// dx = d/dx (overwrites), dW12 and dW3 accumulate, from the weights' padded copies the forward left in `padded`.
// scratch: [N*3S]; dw_scratch: swiglu_dw_scratch_floats_cuda floats.
template <class A>
void swiglu_backward_cuda(A* dx, float* dW12, float* dW3, const A* dy, const A* x, const A* g, const A* m,
                          const A* padded, int N, int d, int H, A* scratch, float* dw_scratch, Gemm gemm,
                          cudaStream_t stream);

}  // namespace bytelm
