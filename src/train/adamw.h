// AdamW over a model's flat parameter buffer, with global-norm gradient
// clipping and a warmup + cosine learning-rate schedule.
#pragma once
#include <vector>

#include "models/model.h"
#include "train/config.h"

namespace bytelm {

// Learning rate at `step` (0-based): linear warmup to lr, then cosine to lr * min_lr_frac.
double lr_at(const TrainConfig& t, int step);

struct AdamW {
  std::vector<float> m, v;  // first and second moments, same layout as the parameters
  explicit AdamW(size_t n) : m(n, 0.f), v(n, 0.f) {}

  // One update at 0-based `step` with learning rate lr. Scales gradients so
  // their global L2 norm is at most clip (0 = off); returns the norm before clipping.
  double step(std::vector<float>& params, std::vector<float>& grads, const std::vector<ParamInfo>& info,
              const TrainConfig& t, int step, double lr);
};

}  // namespace bytelm
