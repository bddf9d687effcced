// Bits per byte: the cost of every byte of a text under a model.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "models/model.h"

namespace bytelm {

// bits[i] = -log2 p(data[i] | context). Byte 0 has no context and costs 8 bits (uniform). The model reads
// windows of `window` bytes whose context starts at the window, advancing by `stride` (1..window) bytes:
// window k starts at k * stride and scores the predictions no earlier window made, so every byte is scored
// exactly once, and every byte after the first window with at least window - stride bytes before it in its
// window. stride = window is plain windowed scoring, the conditions the model was trained under; a smaller
// stride buys each byte more context (a transformer's sliding-window evaluation) at window / stride times the
// work. The last window ends at the end of the data (it may be shorter). Up to `batch` windows run through the
// model at once; `progress`, if set, is told how many bytes are scored after each batch.
using ScoreProgress = std::function<void(size_t scored)>;
std::vector<float> score_bytes(Model<float>& model, const uint8_t* data, size_t n, int window, int stride, int batch,
                               const ScoreProgress& progress = {});

struct BpbResult {
  double bpb = 0;
  uint64_t bytes = 0;
};
BpbResult bits_per_byte(Model<float>& model, const uint8_t* data, size_t n, int window, int stride, int batch,
                        const ScoreProgress& progress = {});

}  // namespace bytelm
