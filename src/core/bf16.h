// bf16, the storage type of the GPU path's activations (CUDA builds only).
// Kernels load it into fp32, compute and accumulate in fp32, and round once
// on the store; parameters, gradients, optimizer moments, LayerNorm
// statistics and losses stay fp32.
#pragma once
#include <cuda_bf16.h>

namespace bytelm {

using bf16 = __nv_bfloat16;

}  // namespace bytelm
