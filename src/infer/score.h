// Bits per byte: the cost of every byte of a text under a model.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "models/model.h"

namespace bytelm {

// bits[i] = -log2 p(data[i] | context). Byte 0 has no context and costs 8 bits
// (uniform). Bytes are scored in windows of `seq` predictions whose context
// starts at the window (so cost matches training-time conditions); up to
// `batch` windows run through the model at once. `progress`, if set, is told
// how many bytes are scored after each batch.
using ScoreProgress = std::function<void(size_t scored)>;
std::vector<float> score_bytes(Model<float>& model, const uint8_t* data, size_t n, int seq, int batch,
                               const ScoreProgress& progress = {});

struct BpbResult {
  double bpb = 0;
  uint64_t bytes = 0;
};
BpbResult bits_per_byte(Model<float>& model, const uint8_t* data, size_t n, int seq, int batch);

}  // namespace bytelm
