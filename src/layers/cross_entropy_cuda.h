// CUDA softmax cross-entropy over the 256 byte values (see cross_entropy.h):
// one warp per row. y is a device array of N bytes.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bytelm {

// loss[i] = logsumexp(logits[i]) - logits[i][y[i]] in nats. When dlogits is
// non-null it receives (softmax - onehot(y)) * scale; it may alias logits.
template <class T>
void cross_entropy_forward_backward_cuda(T* loss, T* dlogits, const T* logits, const uint8_t* y, int N, T scale,
                                         cudaStream_t stream);

}  // namespace bytelm
