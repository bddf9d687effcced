#include "layers/quantize.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace bytelm {

namespace {

constexpr int kClipSteps = 20;  // candidate scales: absmax / qmax times 1, 0.99, ..., 0.80

int qmax_of(int bits) { return bits == 8 ? 127 : 7; }

int quantize_one(float x, float scale, int qmax) {
  if (scale == 0.f) return 0;
  return (int)std::clamp(std::nearbyint(x / scale), (float)-qmax, (float)qmax);
}

// The least-squared-error scale of one group (see quantize_matrix).
float best_scale(const float* x, int64_t n, int qmax) {
  float absmax = 0.f;
  for (int64_t i = 0; i < n; i++) absmax = std::max(absmax, std::fabs(x[i]));
  if (absmax == 0.f) return 0.f;
  float best = 0.f;
  double best_err = INFINITY;
  for (int k = 0; k <= kClipSteps; k++) {
    float scale = absmax * (1.f - 0.01f * k) / qmax;
    double err = 0;
    for (int64_t i = 0; i < n; i++) {
      double d = (double)x[i] - (double)quantize_one(x[i], scale, qmax) * scale;
      err += d * d;
    }
    if (err < best_err) best_err = err, best = scale;
  }
  return best;
}

void set_code(QuantizedMatrix& q, int64_t row, int64_t col, int v) {
  uint8_t* r = q.codes.data() + row * q.code_bytes_a_row();
  if (q.bits == 8) {
    r[col] = (uint8_t)(int8_t)v;
    return;
  }
  uint8_t nibble = (uint8_t)(v + 8);
  uint8_t& byte = r[col / 2];
  byte = col % 2 ? (uint8_t)((byte & 0x0F) | (nibble << 4)) : (uint8_t)((byte & 0xF0) | nibble);
}

}  // namespace

int QuantizedMatrix::code(int64_t row, int64_t col) const {
  const uint8_t* r = codes.data() + row * code_bytes_a_row();
  if (bits == 8) return (int8_t)r[col];
  return (col % 2 ? r[col / 2] >> 4 : r[col / 2] & 0x0F) - 8;
}

void check_quantization(int bits, int group) {
  if (bits != 8 && bits != 4) throw Error("quantization takes 8 or 4 bits, got " + std::to_string(bits));
  if (group < 1) throw Error("quantization groups need at least 1 column, got " + std::to_string(group));
}

QuantizedMatrix quantize_matrix(const float* w, int64_t rows, int64_t cols, int bits, int group) {
  check_quantization(bits, group);
  QuantizedMatrix q;
  q.bits = bits, q.group = group, q.rows = rows, q.cols = cols;
  q.codes.assign((size_t)(rows * q.code_bytes_a_row()), 0);
  q.scales.assign((size_t)(rows * q.groups()), 0.f);
  int qmax = qmax_of(bits);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++)
    for (int64_t g = 0; g < q.groups(); g++) {
      int64_t c0 = g * group, n = std::min<int64_t>(group, cols - c0);
      const float* x = w + r * cols + c0;
      float scale = best_scale(x, n, qmax);
      q.scales[(size_t)(r * q.groups() + g)] = scale;
      for (int64_t i = 0; i < n; i++) set_code(q, r, c0 + i, quantize_one(x[i], scale, qmax));
    }
  return q;
}

void dequantize_matrix(const QuantizedMatrix& q, float* w) {
  for (int64_t r = 0; r < q.rows; r++)
    for (int64_t c = 0; c < q.cols; c++)
      w[r * q.cols + c] = (float)q.code(r, c) * q.scales[(size_t)(r * q.groups() + c / q.group)];
}

QuantizedMatrix widen_codes(const QuantizedMatrix& q) {
  if (q.bits == 8) return q;
  QuantizedMatrix wide = q;
  wide.bits = 8;
  wide.codes.assign((size_t)(q.rows * q.cols), 0);
  for (int64_t r = 0; r < q.rows; r++)
    for (int64_t c = 0; c < q.cols; c++) wide.codes[(size_t)(r * q.cols + c)] = (uint8_t)(int8_t)q.code(r, c);
  return wide;
}

}  // namespace bytelm
