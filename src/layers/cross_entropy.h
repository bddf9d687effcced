// Softmax cross-entropy over the 256 byte values.
#pragma once
#include <cstdint>

namespace bytelm {

// loss[i] = logsumexp(logits[i]) - logits[i][y[i]] in nats. When dlogits is
// non-null it receives (softmax - onehot(y)) * scale; it may alias logits.
template <class T>
void cross_entropy_forward_backward(T* loss, T* dlogits, const T* logits, const uint8_t* y, int N, T scale);

}  // namespace bytelm
