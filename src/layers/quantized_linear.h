// The product y = x W^T (linear.h's layout) with W held as 8-bit codes and group scales (quantize.h), on the CPU:
// what a quantized checkpoint's streams use for their products. At a few rows a product reads each weight once,
// so it costs the weights' bytes, and codes are a quarter of fp32's: ssm-10m's blocks take 37 MB in fp32, past
// a 32 MB L3 cache, and 9 MB in codes.
#pragma once
#include <cstdint>

#include "layers/quantize.h"

namespace bytelm {

// best: AVX2 and FMA where the CPU has them (checked at run time), else portable; portable: plain C++. Each sums
// a group in its own order, so the two may differ in the last bits; each gives the same bits at any thread count.
enum class QuantizedKernel { best, portable };

// y [N, out] (row stride out) = x [N, W.cols] times rows first_row .. first_row + out of W, transposed:
// y[n][o] = sum over groups g of scale[r][g] * sum over the group's columns c of code[r][c] x[n][c], r = first_row + o.
// W must hold 8-bit codes (widen_codes makes them from 4-bit ones).
void quantized_linear_forward(float* y, const float* x, const QuantizedMatrix& W, int64_t first_row, int N, int out,
                              QuantizedKernel kernel = QuantizedKernel::best);

}  // namespace bytelm
