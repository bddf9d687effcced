#include "layers/embedding.h"

#include <cstring>

namespace bytelm {

template <class T>
void embedding_forward(T* e, const uint8_t* x, const T* E, int N, int d) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) std::memcpy(e + (size_t)i * d, E + (size_t)x[i] * d, sizeof(T) * d);
}

template <class T>
void embedding_backward(T* dE, const T* de, const uint8_t* x, int N, int d) {
  // Threads own disjoint column ranges and walk the rows in order: no races, fixed summation order.
#pragma omp parallel for schedule(static)
  for (int c0 = 0; c0 < d; c0 += 16) {
    int c1 = c0 + 16 < d ? c0 + 16 : d;
    for (int i = 0; i < N; i++)
      for (int c = c0; c < c1; c++) dE[(size_t)x[i] * d + c] += de[(size_t)i * d + c];
  }
}

template void embedding_forward<float>(float*, const uint8_t*, const float*, int, int);
template void embedding_forward<double>(double*, const uint8_t*, const double*, int, int);
template void embedding_backward<float>(float*, const float*, const uint8_t*, int, int);
template void embedding_backward<double>(double*, const double*, const uint8_t*, int, int);

}  // namespace bytelm
