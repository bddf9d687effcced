// Hashed byte-bigram embeddings: each position looks up a row of a small table by a hash of (previous byte,
// byte), so the model gets the bigram as an input feature without a 65,536-row table. Position 0 of a window
// has no previous byte and hashes a fixed "none" value (256) in its place. The model projects the rows to d.
//   e[b, t] = table[bigram_bucket(x[b, t-1], x[b, t])]
#pragma once
#include <cstdint>

namespace bytelm {

// The bucket of a byte after `prev` (0..255, or 256 for none), in 0..buckets-1.
int bigram_bucket(int prev, int byte, int buckets);

// e [B, T, dim] from x [B, T] and table [buckets, dim]. prev [B] (or null) holds each row's byte before
// position 0, for a stream continuing past a step; null means none.
template <class T>
void bigram_forward(T* e, const uint8_t* x, const T* table, int B, int T_, int buckets, int dim, const uint8_t* prev);

// dtable[bucket of (b, t)] += de[b, t], for windows starting the sequence.
template <class T>
void bigram_backward(T* dtable, const T* de, const uint8_t* x, int B, int T_, int buckets, int dim);

}  // namespace bytelm
