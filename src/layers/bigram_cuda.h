// CUDA hashed byte-bigram embedding (see bigram.h). e and de are of the storage type A (float or bf16); the table
// and its gradient fp32; x and prev device bytes.
// The backward is a deterministic scatter: the positions are sorted by bucket (a stable radix sort of
// (bucket, position) pairs, so each bucket's positions come out in increasing order), then one block owns each
// bucket's row of dtable and adds its positions' rows in a fixed order. No atomics: bit-reproducible.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace bytelm {

template <class A>
void bigram_forward_cuda(A* e, const uint8_t* x, const float* table, int B, int T_, int buckets, int dim,
                         const uint8_t* prev, cudaStream_t stream);

// Bytes of scratch (`workspace`) that bigram_backward_cuda needs.
size_t bigram_backward_cuda_workspace_bytes(int B, int T_, int buckets);

// dtable[bucket of (b, t)] += de[b, t], for windows starting the sequence.
template <class A>
void bigram_backward_cuda(float* dtable, const A* de, const uint8_t* x, int B, int T_, int buckets, int dim,
                          void* workspace, cudaStream_t stream);

}  // namespace bytelm
