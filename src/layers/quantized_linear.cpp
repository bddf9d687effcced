#include "layers/quantized_linear.h"

#include <immintrin.h>

#include <algorithm>
#include <string>

#include "core/error.h"

namespace bytelm {

namespace {

constexpr int kRowsTogether = 4;  // rows of x a weight row is converted once for

// out[r] = the product's element of x row r (r < R, rows in) with one weight row (codes w, scales s).
template <int R>
void rows_portable(float* out, const int8_t* w, const float* s, const float* x, int64_t in, int group) {
  float total[R] = {};
  for (int64_t c0 = 0, g = 0; c0 < in; c0 += group, g++) {
    int64_t n = std::min<int64_t>(group, in - c0);
    for (int r = 0; r < R; r++) {
      float part = 0.f;
      for (int64_t k = 0; k < n; k++) part += float(w[c0 + k]) * x[r * in + c0 + k];
      total[r] += part * s[g];
    }
  }
  for (int r = 0; r < R; r++) out[r] = total[r];
}

// The same sums, 8 columns a lane-vector: a group's full eights into one vector a row (then times the scale), its
// last columns one by one.
template <int R>
__attribute__((target("avx2,fma"))) void rows_avx2(float* out, const int8_t* w, const float* s, const float* x,
                                                   int64_t in, int group) {
  __m256 total[R];
  float tail[R] = {};
  for (int r = 0; r < R; r++) total[r] = _mm256_setzero_ps();
  for (int64_t c0 = 0, g = 0; c0 < in; c0 += group, g++) {
    int64_t n = std::min<int64_t>(group, in - c0), full = n / 8 * 8;
    __m256 part[R];
    float part_tail[R] = {};
    for (int r = 0; r < R; r++) part[r] = _mm256_setzero_ps();
    for (int64_t k = 0; k < full; k += 8) {
      __m128i codes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w + c0 + k));
      __m256 wf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(codes));
      for (int r = 0; r < R; r++) part[r] = _mm256_fmadd_ps(wf, _mm256_loadu_ps(x + r * in + c0 + k), part[r]);
    }
    for (int64_t k = full; k < n; k++)
      for (int r = 0; r < R; r++) part_tail[r] += float(w[c0 + k]) * x[r * in + c0 + k];
    __m256 scale = _mm256_set1_ps(s[g]);
    for (int r = 0; r < R; r++) {
      total[r] = _mm256_fmadd_ps(part[r], scale, total[r]);
      tail[r] += part_tail[r] * s[g];
    }
  }
  for (int r = 0; r < R; r++) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(total[r]), _mm256_extractf128_ps(total[r], 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    out[r] = _mm_cvtss_f32(h) + tail[r];
  }
}

using RowsFn = void (*)(float*, const int8_t*, const float*, const float*, int64_t, int);

RowsFn rows_fn(bool avx2, int R) {
  switch (R) {
    case 1:
      return avx2 ? rows_avx2<1> : rows_portable<1>;
    case 2:
      return avx2 ? rows_avx2<2> : rows_portable<2>;
    case 3:
      return avx2 ? rows_avx2<3> : rows_portable<3>;
    default:
      return avx2 ? rows_avx2<4> : rows_portable<4>;
  }
}

bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

}  // namespace

void quantized_linear_forward(float* y, const float* x, const QuantizedMatrix& W, int64_t first_row, int N, int out,
                              QuantizedKernel kernel) {
  if (W.bits != 8) throw Error("quantized_linear_forward takes 8-bit codes, got " + std::to_string(W.bits) + " bits");
  if (first_row < 0 || first_row + out > W.rows)
    throw Error("quantized_linear_forward: rows " + std::to_string(first_row) + ".." + std::to_string(first_row + out) +
                " of a matrix of " + std::to_string(W.rows));
  bool avx2 = kernel == QuantizedKernel::best && cpu_has_avx2_fma();
  const int64_t in = W.cols;
  const int8_t* codes = reinterpret_cast<const int8_t*>(W.codes.data());
  // Threads take whole weight rows, so each element is summed in one order whatever the thread count; a product
  // too small to pay for waking them runs on the caller's.
#pragma omp parallel for schedule(static) if ((int64_t)out * in >= (1 << 16))
  for (int o = 0; o < out; o++) {
    int64_t r = first_row + o;
    const int8_t* w = codes + r * in;
    const float* s = W.scales.data() + r * W.groups();
    float got[kRowsTogether];
    for (int n0 = 0; n0 < N; n0 += kRowsTogether) {
      int R = std::min(kRowsTogether, N - n0);
      rows_fn(avx2, R)(got, w, s, x + (int64_t)n0 * in, in, W.group);
      for (int i = 0; i < R; i++) y[(int64_t)(n0 + i) * out + o] = got[i];
    }
  }
}

}  // namespace bytelm
