// CUDA byte embedding (see embedding.h). x is a device array of N bytes.
// The backward is a matrix product, dE += onehot(x)^T de, with the one-hot rows
// written to scratch first: the tensor cores sum exact products (0 or 1 times
// de) in fp32, with no atomics, so it is bit-reproducible run to run.
// e and de are of the storage type A (float or bf16); E and dE are fp32.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "layers/linear_cuda.h"

namespace bytelm {

template <class A>
void embedding_forward_cuda(A* e, const uint8_t* x, const float* E, int N, int d, cudaStream_t stream);

// Bytes of scratch embedding_backward_cuda needs: the one-hot matrix [256, N] of A.
inline size_t embedding_backward_cuda_scratch_bytes(int N, size_t sizeof_a) { return 256 * (size_t)N * sizeof_a; }

// dE[x[i]] += de[i]
template <class A>
void embedding_backward_cuda(float* dE, const A* de, const uint8_t* x, int N, int d, void* scratch, Gemm gemm,
                             cudaStream_t stream);

}  // namespace bytelm
