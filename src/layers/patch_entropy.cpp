#include "layers/patch_entropy.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/parallel.h"
#include "layers/patch.h"

namespace bytelm {

namespace {

// The logits of one row of the table.
template <class T>
void row_logits(T* logits, const T* row) {
  for (int k = 0; k < 256; k++) logits[k] = T(kBigramLogitScale) * row[k];
}

// log sum_k exp(logits[k]) over 256 logits, shifted by the maximum.
template <class T>
T log_sum_exp(const T* logits) {
  T mx = *std::max_element(logits, logits + 256), s = 0;
  for (int k = 0; k < 256; k++) s += std::exp(logits[k] - mx);
  return mx + std::log(s);
}

}  // namespace

// H = lse - sum_k p_k l_k (nats), in bits.
template <class T>
T bigram_entropy_bits(const T* row) {
  T logits[256];
  row_logits(logits, row);
  T lse = log_sum_exp(logits), expected = 0;
  for (int k = 0; k < 256; k++) expected += std::exp(logits[k] - lse) * logits[k];
  return (lse - expected) / T(std::log(2.0));
}

template <class T>
EntropyPatches entropy_patches(const T* G, const uint8_t* x, int B, int T_, int P, double threshold) {
  EntropyPatches s;
  s.B = B;
  s.T = T_;
  s.slots = patch_count(T_, P);
  s.first.assign((size_t)B * s.slots, 0);
  s.length.assign((size_t)B * s.slots, 0);
  s.source.assign((size_t)B * T_, -1);
  T entropy[256];
  bool known[256] = {};  // a row's entropy is worked out when a byte first reads it
  for (int b = 0; b < B; b++) {
    int closed = 0, open_first = 0;
    for (int t = 0; t < T_; t++) {
      uint8_t a = x[(size_t)b * T_ + t];
      if (!known[a]) entropy[a] = bigram_entropy_bits(G + (size_t)a * 256), known[a] = true;
      if (entropy_patch_closes(t + 1 - open_first, entropy[a], P, threshold)) {
        s.first[(size_t)b * s.slots + closed] = open_first;
        s.length[(size_t)b * s.slots + closed] = t + 1 - open_first;
        closed++;
        open_first = t + 1;
      }
      s.source[(size_t)b * T_ + t] = closed - 1;
    }
  }
  return s;
}

template <class T>
void bigram_loss_forward(T* loss, const T* G, const uint8_t* x, const uint8_t* y, int N) {
  T lse[256], logits[256];
  bool known[256] = {};  // the rows read, only
  for (int i = 0; i < N; i++) {
    if (!known[x[i]]) {
      row_logits(logits, G + (size_t)x[i] * 256);
      lse[x[i]] = log_sum_exp(logits);
      known[x[i]] = true;
    }
    loss[i] = lse[x[i]] - T(kBigramLogitScale) * G[(size_t)x[i] * 256 + y[i]];
  }
}

// d(loss_i)/dG[x_i] = s (softmax(s G[x_i]) - onehot(y_i)), s = kBigramLogitScale: each row gets its softmax times
// how often it was read.
template <class T>
void bigram_loss_backward(T* dG, const T* G, const uint8_t* x, const uint8_t* y, int N, T scale) {
  std::vector<int> count(256, 0);
  for (int i = 0; i < N; i++) count[x[i]]++;
  T s = T(kBigramLogitScale) * scale, logits[256];
  for (int a = 0; a < 256; a++) {
    if (!count[a]) continue;
    row_logits(logits, G + (size_t)a * 256);
    T lse = log_sum_exp(logits);
    for (int k = 0; k < 256; k++) dG[(size_t)a * 256 + k] += s * count[a] * std::exp(logits[k] - lse);
  }
  for (int i = 0; i < N; i++) dG[(size_t)x[i] * 256 + y[i]] -= s;
}

template <class T>
void patch_entropy_pool_forward(T* p, const T* e, const EntropyPatches& s, int d) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < s.B; b++)
    for (int j = 0; j < s.slots; j++) {
      size_t slot = (size_t)b * s.slots + j;
      T* pj = p + slot * d;
      for (int c = 0; c < d; c++) pj[c] = 0;
      int len = s.length[slot];
      if (!len) continue;
      for (int r = 0; r < len; r++) {
        const T* et = e + ((size_t)b * s.T + s.first[slot] + r) * d;
        for (int c = 0; c < d; c++) pj[c] += et[c];
      }
      for (int c = 0; c < d; c++) pj[c] /= len;
    }
}

template <class T>
void patch_entropy_pool_backward(T* de, const T* dp, const EntropyPatches& s, int d) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < s.B; b++)
    for (int j = 0; j < s.slots; j++) {
      size_t slot = (size_t)b * s.slots + j;
      const T* dpj = dp + slot * d;
      int len = s.length[slot];
      for (int r = 0; r < len; r++) {
        T* det = de + ((size_t)b * s.T + s.first[slot] + r) * d;
        for (int c = 0; c < d; c++) det[c] += dpj[c] / len;
      }
    }
}

template <class T>
void patch_entropy_broadcast_forward(T* out, const T* p, const T* start, const T* e, const EntropyPatches& s, int d) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < s.B; b++)
    for (int t = 0; t < s.T; t++) {
      int k = s.source[(size_t)b * s.T + t];
      const T* src = k >= 0 ? p + ((size_t)b * s.slots + k) * d : start;
      size_t o = ((size_t)b * s.T + t) * d;
      for (int c = 0; c < d; c++) out[o + c] = src[c] + e[o + c];
    }
}

template <class T>
void patch_entropy_broadcast_backward(T* dp, T* dstart, T* de, const T* dout, const EntropyPatches& s, int d) {
  std::memcpy(de, dout, sizeof(T) * (size_t)s.B * s.T * d);
  std::memset(dp, 0, sizeof(T) * (size_t)s.B * s.slots * d);
  // Each row on its own: its bytes add into its own slots, or into its part of dstart.
  parallel_rows_reduce(s.B, d, dstart, [&](int b, T* part) {
    for (int t = 0; t < s.T; t++) {
      int k = s.source[(size_t)b * s.T + t];
      T* dst = k >= 0 ? dp + ((size_t)b * s.slots + k) * d : part;
      const T* g = dout + ((size_t)b * s.T + t) * d;
      for (int c = 0; c < d; c++) dst[c] += g[c];
    }
  });
}

template <class T>
void patch_entropy_step(T* patch, int* closes, T* sum, int* length, int* source, const T* e, const uint8_t* x,
                        const T* G, int B, int P, int d, double threshold) {
  for (int b = 0; b < B; b++) {
    T* s = sum + (size_t)b * d;
    const T* eb = e + (size_t)b * d;
    for (int k = 0; k < d; k++) s[k] += eb[k];
    int n = ++length[b];
    closes[b] = entropy_patch_closes(n, bigram_entropy_bits(G + (size_t)x[b] * 256), P, threshold);
    if (!closes[b]) continue;
    for (int k = 0; k < d; k++) patch[(size_t)b * d + k] = s[k] / n, s[k] = 0;
    length[b] = 0;
    source[b] = 0;
  }
}

#define BYTELM_INSTANTIATE(T)                                                                                \
  template T bigram_entropy_bits<T>(const T*);                                                               \
  template EntropyPatches entropy_patches<T>(const T*, const uint8_t*, int, int, int, double);               \
  template void bigram_loss_forward<T>(T*, const T*, const uint8_t*, const uint8_t*, int);                  \
  template void bigram_loss_backward<T>(T*, const T*, const uint8_t*, const uint8_t*, int, T);              \
  template void patch_entropy_pool_forward<T>(T*, const T*, const EntropyPatches&, int);                     \
  template void patch_entropy_pool_backward<T>(T*, const T*, const EntropyPatches&, int);                    \
  template void patch_entropy_broadcast_forward<T>(T*, const T*, const T*, const T*, const EntropyPatches&, int); \
  template void patch_entropy_broadcast_backward<T>(T*, T*, T*, const T*, const EntropyPatches&, int);        \
  template void patch_entropy_step<T>(T*, int*, T*, int*, int*, const T*, const uint8_t*, const T*, int, int, int, \
                                      double);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(double)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
