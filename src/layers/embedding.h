// Byte embedding: e[i] = E[x[i]] for a table E [256, d].
#pragma once
#include <cstdint>

namespace bytelm {

template <class T>
void embedding_forward(T* e, const uint8_t* x, const T* E, int N, int d);

// dE[x[i]] += de[i]
template <class T>
void embedding_backward(T* dE, const T* de, const uint8_t* x, int N, int d);

}  // namespace bytelm
