// Calibration for quantization (bytelm quantize --calib): what the products of a model read, for GPTQ.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>

#include "infer/score.h"
#include "layers/quantize.h"
#include "models/model.h"

namespace bytelm {

// The input rows of every product over the weight matrices that a quantized checkpoint stores
// (is_quantized_weight), by the matrix's offset in params(), gathered while the model scores `n` bytes in plain
// windows of `seq` (score_bytes, `batch` windows at once). A matrix that no product reads (an embedding table that
// is only looked up) keeps count 0. CPU models only.
std::map<size_t, ProductInputs> gather_product_inputs(Model<float>& model, const uint8_t* data, size_t n, int seq,
                                                      int batch, const ScoreProgress& progress = {});

}  // namespace bytelm
