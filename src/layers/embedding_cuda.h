// CUDA byte embedding (see embedding.h). x is a device array of N bytes.
// The backward has one owner per dE element (no atomics): bit-reproducible.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bytelm {

template <class T>
void embedding_forward_cuda(T* e, const uint8_t* x, const T* E, int N, int d, cudaStream_t stream);

// dE[x[i]] += de[i]
template <class T>
void embedding_backward_cuda(T* dE, const T* de, const uint8_t* x, int N, int d, cudaStream_t stream);

}  // namespace bytelm
