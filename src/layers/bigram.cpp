#include "layers/bigram.h"

#include <algorithm>

namespace bytelm {

// A multiplicative hash of the pair: the 9-bit previous value and the byte packed into 17 bits, mixed by an odd
// constant and the high bits folded down, so neighbouring pairs spread over the table.
int bigram_bucket(int prev, int byte, int buckets) {
  uint32_t key = uint32_t(prev) << 8 | uint32_t(byte);
  uint32_t h = key * 0x9E3779B1u;
  h ^= h >> 15;
  return int(h % uint32_t(buckets));
}

namespace {

int bucket_at(const uint8_t* x, int b, int t, int T_, int buckets, const uint8_t* prev) {
  size_t row = (size_t)b * T_ + t;
  int before = t > 0 ? x[row - 1] : prev ? prev[b] : 256;
  return bigram_bucket(before, x[row], buckets);
}

}  // namespace

template <class T>
void bigram_forward(T* e, const uint8_t* x, const T* table, int B, int T_, int buckets, int dim, const uint8_t* prev) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T_; t++) {
      const T* r = table + (size_t)bucket_at(x, b, t, T_, buckets, prev) * dim;
      std::copy(r, r + dim, e + ((size_t)b * T_ + t) * dim);
    }
}

template <class T>
void bigram_backward(T* dtable, const T* de, const uint8_t* x, int B, int T_, int buckets, int dim) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T_; t++) {
      T* r = dtable + (size_t)bucket_at(x, b, t, T_, buckets, nullptr) * dim;
      const T* g = de + ((size_t)b * T_ + t) * dim;
      for (int i = 0; i < dim; i++) r[i] += g[i];
    }
}

template void bigram_forward<float>(float*, const uint8_t*, const float*, int, int, int, int, const uint8_t*);
template void bigram_forward<double>(double*, const uint8_t*, const double*, int, int, int, int, const uint8_t*);
template void bigram_backward<float>(float*, const float*, const uint8_t*, int, int, int, int);
template void bigram_backward<double>(double*, const double*, const uint8_t*, int, int, int, int);

}  // namespace bytelm
