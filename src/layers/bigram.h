// Hashed byte-bigram embeddings: each position looks up a row of a small table by a hash of (previous byte,
// byte), so the model gets the bigram as an input feature without a 65,536-row table. Position 0 of a window
// has no previous byte and hashes a fixed "none" value (256) in its place. The model projects the rows to d.
//   e[b, t] = table[bigram_bucket(x[b, t-1], x[b, t])]
#pragma once
#include <cstddef>
#include <cstdint>

namespace bytelm {

#if defined(__CUDACC__)
#define BYTELM_BIGRAM_HOST_DEVICE __host__ __device__
#else
#define BYTELM_BIGRAM_HOST_DEVICE
#endif

// The bucket of a byte after `prev` (0..255, or 256 for none), in 0..buckets-1: a multiplicative hash of the
// pair (the 9-bit previous value and the byte packed into 17 bits, mixed by an odd constant, the high bits folded
// down), so neighbouring pairs spread over the table. Here so that the GPU kernels (bigram.cu) hash alike.
inline BYTELM_BIGRAM_HOST_DEVICE int bigram_bucket(int prev, int byte, int buckets) {
  uint32_t key = uint32_t(prev) << 8 | uint32_t(byte);
  uint32_t h = key * 0x9E3779B1u;
  h ^= h >> 15;
  return int(h % uint32_t(buckets));
}

// The bucket of position t of row b in x [B, T_]; prev [B] (or null: none) is each row's byte before position 0.
inline BYTELM_BIGRAM_HOST_DEVICE int bigram_bucket_at(const uint8_t* x, int b, int t, int T_, int buckets,
                                                      const uint8_t* prev) {
  size_t row = (size_t)b * T_ + t;
  int before = t > 0 ? x[row - 1] : prev ? prev[b] : 256;
  return bigram_bucket(before, x[row], buckets);
}

// e [B, T, dim] from x [B, T] and table [buckets, dim]. prev [B] (or null) holds each row's byte before
// position 0, for a stream continuing past a step; null means none.
template <class T>
void bigram_forward(T* e, const uint8_t* x, const T* table, int B, int T_, int buckets, int dim, const uint8_t* prev);

// dtable[bucket of (b, t)] += de[b, t], for windows starting the sequence.
template <class T>
void bigram_backward(T* dtable, const T* de, const uint8_t* x, int B, int T_, int buckets, int dim);

}  // namespace bytelm
