// CUDA MLP of the transformer family (see mlp.h): the two products through cuBLAS (linear_cuda.h) and the
// LeakyReLU^2 between them in one elementwise kernel each way. h, a, x, y, dx, dy, scratch and the weight copies
// W1, W2 are of the storage type A (float or bf16); dW1 and dW2 fp32. Nothing synchronises the host.
#pragma once
#include <cuda_runtime.h>

#include "layers/linear_cuda.h"

namespace bytelm {

template <class A>
void mlp_forward_cuda(A* y, A* h, A* a, const A* x, const A* W1, const A* W2, int N, int d, int H, float leak,
                      Gemm gemm, cudaStream_t stream);

// dx overwritten, dW1 and dW2 accumulate; scratch [N*H].
template <class A>
void mlp_backward_cuda(A* dx, float* dW1, float* dW2, const A* dy, const A* x, const A* h, const A* a, const A* W1,
                       const A* W2, int N, int d, int H, float leak, A* scratch, Gemm gemm, cudaStream_t stream);

}  // namespace bytelm
