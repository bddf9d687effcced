// Drawing the next byte from logits: temperature, top-k, top-p (nucleus).
#pragma once
#include <cstdint>

#include "core/rng.h"

namespace bytelm {

struct SamplingOptions {
  double temperature = 1.0;  // 0 = greedy
  int top_k = 0;             // 0 = all 256
  double top_p = 1.0;        // keep the smallest set whose probability reaches top_p
  uint64_t seed = 1;
};

uint8_t sample_byte(const float* logits, const SamplingOptions& opt, Rng& rng);

}  // namespace bytelm
