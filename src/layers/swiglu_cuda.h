// CUDA SwiGLU MLP (see swiglu.h): cuBLAS GEMMs around fused elementwise kernels.
//
// The hidden width H = 4d/3 is often odd (1365 at d=1024): rows of that length
// are not 16-byte aligned and cuBLAS leaves its tensor-core kernels for slow
// ones. On the GPU the hidden activations therefore use a padded row stride
// S = swiglu_stride_cuda(H), and W12 and W3 are copied into zero-padded
// workspace copies ([2S, d], [d, S]) for their products, so that every product
// dimension is a multiple of 16; the parameters and their gradients keep the
// CPU layout.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "layers/linear_cuda.h"

namespace bytelm {

inline int swiglu_stride_cuda(int H) { return (H + 15) / 16 * 16; }
// Floats of workspace both passes need: padded W12 and W3 (3 d S), and for the backward the padded dW3 (d S).
inline size_t swiglu_workspace_cuda(int d, int H) { return 4 * (size_t)d * swiglu_stride_cuda(H); }

// g [N, 2S] holds a in columns [0, H) and b in [S, S + H); m [N, S] is zero past H. Both are kept for the backward.
template <class T>
void swiglu_forward_cuda(T* y, T* g, T* m, const T* x, const T* W12, const T* W3, int N, int d, int H, T* workspace,
                         Gemm gemm, cudaStream_t stream);

// dx = d/dx (overwrites), dW12 and dW3 accumulate. scratch: [N*3S].
template <class T>
void swiglu_backward_cuda(T* dx, T* dW12, T* dW3, const T* dy, const T* x, const T* g, const T* m, const T* W12,
                          const T* W3, int N, int d, int H, T* scratch, T* workspace, Gemm gemm, cudaStream_t stream);

}  // namespace bytelm
