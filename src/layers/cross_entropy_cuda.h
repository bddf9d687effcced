// CUDA softmax cross-entropy over the 256 byte values (see cross_entropy.h):
// one warp per row. y is a device array of N bytes. Logits are of the storage
// type A (float or bf16); the losses are fp32.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bytelm {

// loss[i] = logsumexp(logits[i]) - logits[i][y[i]] in nats. When dlogits is
// non-null it receives (softmax - onehot(y)) * scale; it may alias logits.
template <class A>
void cross_entropy_forward_backward_cuda(float* loss, A* dlogits, const A* logits, const uint8_t* y, int N,
                                         float scale, cudaStream_t stream);

}  // namespace bytelm
