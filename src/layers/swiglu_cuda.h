// CUDA SwiGLU MLP (see swiglu.h): cuBLAS GEMMs around fused elementwise kernels.
//
// The hidden width H = 4d/3 is often odd (1365 at d=1024): rows of that length
// are not 16-byte aligned and cuBLAS leaves its tensor-core kernels for slow
// ones. On the GPU the hidden activations therefore use a padded row stride
// S = swiglu_stride_cuda(H): g [N, 2S] and m [N, S]. W12 [2H, d] has rows of d
// and is read in place, a half at a time; W3 [d, H] is copied by the forward
// into a zero-padded W3p [d, S], which the backward reuses (so W3p must live
// from a layer's forward to its backward: one per layer). The parameters and
// their gradients keep the CPU layout. Activations and the weights the products
// read are of the storage type A (float or bf16); the weight gradients are fp32.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "layers/linear_cuda.h"

namespace bytelm {

inline int swiglu_stride_cuda(int H) { return (H + 15) / 16 * 16; }
// Elements of W3p, the padded copy of W3 ([d, S]).
inline size_t swiglu_w3_copy_size_cuda(int d, int H) { return (size_t)d * swiglu_stride_cuda(H); }
// Bytes of workspace the backward needs: the padded weight gradient dW3p [d, S], fp32.
inline size_t swiglu_workspace_bytes_cuda(int d, int H) { return (size_t)d * swiglu_stride_cuda(H) * sizeof(float); }

// y = residual + SwiGLU(x) when residual is given (the sum in the last product's epilogue: gemm.lt must be set),
// else SwiGLU(x). W3p [d, S] receives W3 padded with zero columns. g [N, 2S] holds a in columns [0, H) and b in
// [S, S + H) (the padding columns are left as they were); m [N, S] is zero past H. g, m and W3p are kept for the
// backward.
template <class A>
void swiglu_forward_cuda(A* y, A* g, A* m, A* W3p, const A* x, const A* W12, const A* W3, int N, int d, int H,
                         const A* residual, Gemm gemm, cudaStream_t stream);

// dx = d/dx (overwrites), dW12 and dW3 accumulate. W3p: the forward's copy. scratch: [N*3S].
template <class A>
void swiglu_backward_cuda(A* dx, float* dW12, float* dW3, const A* dy, const A* x, const A* g, const A* m,
                          const A* W12, const A* W3p, int N, int d, int H, A* scratch, void* workspace, Gemm gemm,
                          cudaStream_t stream);

}  // namespace bytelm
