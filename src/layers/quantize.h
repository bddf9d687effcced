// Weight quantization (bytelm quantize): a [rows, cols] matrix is cut, row by row, into groups of `group`
// columns (a row's last group may be shorter); each group is stored as signed integers of `bits` bits (8 or 4)
// times one fp32 scale. Weights only: a model loads them back as fp32 (dequantize_matrix) and runs as before, so
// what quantization costs is measured by the same eval.
#pragma once
#include <cstdint>
#include <vector>

namespace bytelm {

struct QuantizedMatrix {
  int bits = 8, group = 64;
  int64_t rows = 0, cols = 0;
  // 8 bits: int8 (two's complement), [rows, cols]. 4 bits: two codes a byte, [rows, (cols + 1) / 2], column 2k in
  // the low nibble and 2k + 1 in the high one, each stored as q + 8 (q in -8..7; quantize_matrix uses -7..7).
  std::vector<uint8_t> codes;
  std::vector<float> scales;  // [rows, groups()]

  int64_t groups() const { return (cols + group - 1) / group; }
  int64_t code_bytes_a_row() const { return bits == 8 ? cols : (cols + 1) / 2; }
  int code(int64_t row, int64_t col) const;  // q of one element
};

// Whether a model's few-row products read a quantized checkpoint's codes (models/cpu_ops.h): where_it_pays, when its
// weights are too many to stay in cache; always (tests).
enum class QuantizedUse { where_it_pays, always };

// Throws Error unless bits is 8 or 4 and group >= 1.
void check_quantization(int bits, int group);

// Each group's scale is chosen among the absmax / qmax clipped by 0 to 20% (qmax = 127 or 7) for the least squared
// error, the unclipped one winning ties: a group that lies on its absmax grid comes back exactly, and no group does
// worse than plain absmax rounding (error at most scale / 2 an element). An all-zero group has scale 0.
QuantizedMatrix quantize_matrix(const float* w, int64_t rows, int64_t cols, int bits, int group);

// w [rows, cols] = q * scale.
void dequantize_matrix(const QuantizedMatrix& q, float* w);

// What GPTQ needs of the rows x that a product reads a [rows, cols] weight matrix with (y = x W^T): the sum of
// x^T x over them ([cols, cols], double) and their count. A product over some of the matrix's rows adds too.
struct ProductInputs {
  int64_t rows = 0, cols = 0;
  std::vector<double> gram;
  int64_t count = 0;
};

// GPTQ (Frantar et al., 2022): the columns are quantized in order, and each column's rounding error is spread over
// the columns not yet quantized as the inputs' second moments (gram) say, so that x W^T moves least over inputs like
// the calibration's; the scales are quantize_matrix's, chosen at each group's first column from the weights as
// updated by then. The second moments are damped by 1% of their mean diagonal; a column no input reached keeps
// plain rounding. With uncorrelated inputs (a diagonal gram) it is quantize_matrix exactly.
QuantizedMatrix quantize_matrix_gptq(const float* w, int64_t rows, int64_t cols, int bits, int group,
                                     const std::vector<double>& gram);

// The same values as 8-bit codes (a 4-bit matrix's codes, one a byte; an 8-bit one is copied).
QuantizedMatrix widen_codes(const QuantizedMatrix& q);

}  // namespace bytelm
