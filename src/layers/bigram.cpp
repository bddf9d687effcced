#include "layers/bigram.h"

#include <algorithm>

namespace bytelm {

template <class T>
void bigram_forward(T* e, const uint8_t* x, const T* table, int B, int T_, int buckets, int dim, const uint8_t* prev) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T_; t++) {
      const T* r = table + (size_t)bigram_bucket_at(x, b, t, T_, buckets, prev) * dim;
      std::copy(r, r + dim, e + ((size_t)b * T_ + t) * dim);
    }
}

template <class T>
void bigram_backward(T* dtable, const T* de, const uint8_t* x, int B, int T_, int buckets, int dim) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T_; t++) {
      T* r = dtable + (size_t)bigram_bucket_at(x, b, t, T_, buckets, nullptr) * dim;
      const T* g = de + ((size_t)b * T_ + t) * dim;
      for (int i = 0; i < dim; i++) r[i] += g[i];
    }
}

template void bigram_forward<float>(float*, const uint8_t*, const float*, int, int, int, int, const uint8_t*);
template void bigram_forward<double>(double*, const uint8_t*, const double*, int, int, int, int, const uint8_t*);
template void bigram_backward<float>(float*, const float*, const uint8_t*, int, int, int, int);
template void bigram_backward<double>(double*, const double*, const uint8_t*, int, int, int, int);

}  // namespace bytelm
