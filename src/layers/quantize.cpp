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

// The lower Cholesky factor of a [n, n] symmetric positive definite matrix, in place (the upper triangle is left).
void cholesky_lower(std::vector<double>& a, int64_t n) {
  for (int64_t j = 0; j < n; j++) {
    double d = a[(size_t)(j * n + j)];
    for (int64_t k = 0; k < j; k++) d -= a[(size_t)(j * n + k)] * a[(size_t)(j * n + k)];
    if (!(d > 0))
      throw Error("GPTQ: the inputs' second moments are not positive definite at column " + std::to_string(j));
    d = std::sqrt(d);
    a[(size_t)(j * n + j)] = d;
#pragma omp parallel for schedule(static) if (n - j > 256)
    for (int64_t i = j + 1; i < n; i++) {
      double v = a[(size_t)(i * n + j)];
      for (int64_t k = 0; k < j; k++) v -= a[(size_t)(i * n + k)] * a[(size_t)(j * n + k)];
      a[(size_t)(i * n + j)] = v / d;
    }
  }
}

// U with H^-1 = U^T U, U upper triangular ([n, n], row-major): GPTQ's weights for spreading a column's error.
std::vector<double> inverse_cholesky_upper(std::vector<double> h, int64_t n) {
  cholesky_lower(h, n);                         // H = L L^T
  std::vector<double> m((size_t)(n * n), 0.0);  // M = L^-1, lower
  for (int64_t j = 0; j < n; j++) {
    m[(size_t)(j * n + j)] = 1.0 / h[(size_t)(j * n + j)];
    for (int64_t i = j + 1; i < n; i++) {
      double v = 0;
      for (int64_t k = j; k < i; k++) v += h[(size_t)(i * n + k)] * m[(size_t)(k * n + j)];
      m[(size_t)(i * n + j)] = -v / h[(size_t)(i * n + i)];
    }
  }
  std::vector<double> inv((size_t)(n * n));  // H^-1 = M^T M
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j <= i; j++) {
      double v = 0;
      for (int64_t k = i; k < n; k++) v += m[(size_t)(k * n + i)] * m[(size_t)(k * n + j)];
      inv[(size_t)(i * n + j)] = inv[(size_t)(j * n + i)] = v;
    }
  cholesky_lower(inv, n);  // H^-1 = L2 L2^T: U = L2^T
  std::vector<double> u((size_t)(n * n), 0.0);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j <= i; j++) u[(size_t)(j * n + i)] = inv[(size_t)(i * n + j)];
  return u;
}

// A [rows, cols] matrix of zero codes and scales, to be filled.
QuantizedMatrix zero_matrix(int64_t rows, int64_t cols, int bits, int group) {
  QuantizedMatrix q;
  q.bits = bits, q.group = group, q.rows = rows, q.cols = cols;
  q.codes.assign((size_t)(rows * q.code_bytes_a_row()), 0);
  q.scales.assign((size_t)(rows * q.groups()), 0.f);
  return q;
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
  QuantizedMatrix q = zero_matrix(rows, cols, bits, group);
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

QuantizedMatrix quantize_matrix_gptq(const float* w, int64_t rows, int64_t cols, int bits, int group,
                                     const std::vector<double>& gram) {
  check_quantization(bits, group);
  if (gram.size() != (size_t)(cols * cols))
    throw Error("GPTQ: second moments of " + std::to_string(gram.size()) + " elements for " + std::to_string(cols) +
                " columns");
  std::vector<double> h = gram;
  double mean_diag = 0;
  for (int64_t i = 0; i < cols; i++) mean_diag += h[(size_t)(i * cols + i)] / cols;
  for (int64_t i = 0; i < cols; i++) {
    double& d = h[(size_t)(i * cols + i)];
    if (d == 0) {  // no input reached this column: nothing to spread to or from it
      for (int64_t j = 0; j < cols; j++) h[(size_t)(i * cols + j)] = h[(size_t)(j * cols + i)] = 0;
      d = 1;
    }
    d += 0.01 * (mean_diag > 0 ? mean_diag : 1.0);
  }
  std::vector<double> u = inverse_cholesky_upper(std::move(h), cols);
  QuantizedMatrix q = zero_matrix(rows, cols, bits, group);
  int qmax = qmax_of(bits);
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t r = 0; r < rows; r++) {  // rows are independent: each spreads its errors along itself
    std::vector<double> row(w + r * cols, w + (r + 1) * cols);
    std::vector<float> slice((size_t)group);
    float scale = 0.f;
    for (int64_t i = 0; i < cols; i++) {
      if (i % group == 0) {
        int64_t n = std::min<int64_t>(group, cols - i);
        for (int64_t k = 0; k < n; k++) slice[(size_t)k] = (float)row[(size_t)(i + k)];
        scale = best_scale(slice.data(), n, qmax);
        q.scales[(size_t)(r * q.groups() + i / group)] = scale;
      }
      int code = quantize_one((float)row[(size_t)i], scale, qmax);
      set_code(q, r, i, code);
      double err = (row[(size_t)i] - (double)((float)code * scale)) / u[(size_t)(i * cols + i)];
      for (int64_t j = i + 1; j < cols; j++) row[(size_t)j] -= err * u[(size_t)(i * cols + j)];
    }
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
