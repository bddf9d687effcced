// Entropy patching: patches of variable length, whose boundaries fall where a small byte model is unsure of the
// next byte.
//
// The small model is a learned bigram table G [256, 256]: row G[a], times kBigramLogitScale, holds the logits of
// the byte after an a. It learns by its own cross-entropy, which the ssm model adds to its loss; the main loss sends
// it no gradient, since boundaries are discrete. The scale lets AdamW, whose steps move a parameter by about lr,
// reach a bigram's logits (a few nats apart) within a hundred or so steps instead of thousands, during which the
// patches would stay the fixed ones. A patch closes at byte t (its last byte) when it holds at least P bytes and the entropy
// of G[x_t], the table's prediction of byte t + 1, exceeds a threshold in bits: the next byte is hard to predict, so
// a patch starts there. It also closes at 4P bytes, so that a long predictable run (a line of dashes) does not keep
// its bytes from the patch-rate context for long. The decision reads bytes <= t only, and byte t reads the latest
// patch closed at or before t (a learned start vector before the first), so it is causal as patch.h's fixed rule
// is; that rule is the case of every entropy above the threshold, which is where a model starts (a zero table is
// uniform: 8 bits). On English text a bigram's entropy exceeds 4 bits mostly after a space or a line end: at P = 2
// the default threshold of 4 bits makes patches of 4 to 5 bytes on average, about a word, where 3 bits gives 2.2.
//
// Shapes stay fixed: every closed patch holds at least P bytes, so a row of T bytes closes at most T / P of them.
// They fill the first slots of [B, T/P, d] in order; the slots after them are zero padding, which the causal
// patch-rate blocks run over after the real patches and no byte reads. A patch is the mean of its bytes. A stream
// keeps the sum and length of its open patch: O(1) state.
#pragma once
#include <cstdint>
#include <vector>

// entropy_patch_closes is the one rule on both sides: the host's segmentation and the device's (patch_entropy.cu).
#ifdef __CUDACC__
#define BYTELM_HOST_DEVICE __host__ __device__
#else
#define BYTELM_HOST_DEVICE
#endif

namespace bytelm {

// Where the patches of B rows of T bytes lie, given patch size P (the shortest patch) and slots = T / P.
struct EntropyPatches {
  int B = 0, T = 0, slots = 0;
  std::vector<int> first, length;  // [B, slots]: each closed patch's first byte and length (0 for a padding slot)
  std::vector<int> source;         // [B, T]: the slot byte t reads, -1 for the start vector
};

constexpr double kBigramLogitScale = 32;

// The entropy in bits of softmax(kBigramLogitScale * row[0..255]): the bigram table's uncertainty after one byte.
template <class T>
T bigram_entropy_bits(const T* row);

// Whether an open patch of `length` bytes (the newest included) closes at a byte of this entropy.
BYTELM_HOST_DEVICE inline bool entropy_patch_closes(int length, double entropy_bits, int P, double threshold) {
  return length >= P && (entropy_bits > threshold || length >= 4 * P);
}

// The patches of x [B, T] under table G.
template <class T>
EntropyPatches entropy_patches(const T* G, const uint8_t* x, int B, int T_, int P, double threshold);

// loss [N] = the cross-entropy (nats) of G[x_i] predicting y_i, each byte's (the model adds their mean to its loss).
template <class T>
void bigram_loss_forward(T* loss, const T* G, const uint8_t* x, const uint8_t* y, int N);

// dG += scale * d(sum of the N losses)/dG.
template <class T>
void bigram_loss_backward(T* dG, const T* G, const uint8_t* x, const uint8_t* y, int N, T scale);

// p [B, slots, d] = the mean of each closed patch of e [B, T, d]; padding slots are zero.
template <class T>
void patch_entropy_pool_forward(T* p, const T* e, const EntropyPatches& s, int d);

// de += d/de.
template <class T>
void patch_entropy_pool_backward(T* de, const T* dp, const EntropyPatches& s, int d);

// out[b, t] = (source >= 0 ? p[b, source] : start) + e[b, t].
template <class T>
void patch_entropy_broadcast_forward(T* out, const T* p, const T* start, const T* e, const EntropyPatches& s, int d);

// dp = d/dp (overwrites), dstart += d/dstart, de = dout (overwrites).
template <class T>
void patch_entropy_broadcast_backward(T* dp, T* dstart, T* de, const T* dout, const EntropyPatches& s, int d);

// Streaming, a byte a step for B streams: byte x[b] (embedding e [B, d]) joins stream b's open patch (its sum
// [B, d] and length [B]); where that closes it (closes[b] = 1, else 0), patch[b] receives the patch's mean, the
// open patch empties and source[b] becomes 0, the latest patch (which the blocks turn into the stream's latest
// output before the byte reads it). The same sums and decisions as entropy_patches and the pooling.
template <class T>
void patch_entropy_step(T* patch, int* closes, T* sum, int* length, int* source, const T* e, const uint8_t* x,
                        const T* G, int B, int P, int d, double threshold);

}  // namespace bytelm
