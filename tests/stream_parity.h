// Streaming parity: B streams fed byte by byte (Model::make_streams) give the parallel forward's predictions.
// forward exposes losses, not logits, so the comparison goes through the loss of every position under a few
// fixed targets: loss(y) = logsumexp(logits) - logits[y], which pins the logits up to a shift.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/rng.h"
#include "models/model.h"

namespace bytelm::testing {

// The largest difference, relative to max(1, |loss|), over B random sequences of T bytes and targets 0, 65, 255.
inline double stream_vs_forward_error(Model<float>& m, int B, int T, Rng& rng) {
  std::vector<uint8_t> x((size_t)B * T);
  for (auto& b : x) b = uint8_t(rng.next_u64());
  auto streams = m.make_streams(B);
  std::vector<float> logits((size_t)T * B * 256);  // [t][b][256]
  std::vector<uint8_t> column(B);
  for (int t = 0; t < T; t++) {
    for (int b = 0; b < B; b++) column[b] = x[(size_t)b * T + t];
    streams->step(column.data(), logits.data() + (size_t)t * B * 256);
  }
  double worst = 0;
  std::vector<float> row((size_t)B * T);
  for (int target : {0, 65, 255}) {
    std::vector<uint8_t> y((size_t)B * T, uint8_t(target));
    m.forward(x.data(), y.data(), B, T, row.data());
    for (int b = 0; b < B; b++)
      for (int t = 0; t < T; t++) {
        const float* l = logits.data() + ((size_t)t * B + b) * 256;
        double mx = *std::max_element(l, l + 256), s = 0;
        for (int k = 0; k < 256; k++) s += std::exp(l[k] - mx);
        double stream_loss = mx + std::log(s) - l[target];
        double forward_loss = row[(size_t)b * T + t];
        worst = std::max(worst, std::fabs(stream_loss - forward_loss) / std::max(1.0, std::fabs(stream_loss)));
      }
  }
  return worst;
}

}  // namespace bytelm::testing
