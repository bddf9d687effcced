// AdamW over a model's flat parameter buffer, with global-norm gradient
// clipping and a warmup + cosine learning-rate schedule.
#pragma once
#include <memory>
#include <vector>

#include "models/model.h"
#include "train/config.h"

namespace bytelm {

// Learning rate at `step` (0-based): linear warmup to lr, then cosine to lr * min_lr_frac.
double lr_at(const TrainConfig& t, int step);

class AdamW {
 public:
  std::vector<float> m, v;  // first and second moments, same layout as the parameters
  explicit AdamW(size_t n);
  ~AdamW();

  // One update of the model's parameters from its gradients at 0-based `step`
  // with learning rate lr, on the device the model computes on. Scales the
  // gradients so their global L2 norm is at most clip (0 = off); returns the
  // norm before clipping.
  double step(Model<float>& model, const TrainConfig& t, int step, double lr);
  // For a GPU model the moments live on the device: this copies them into m, v.
  void pull_moments();

 private:
  struct Device;  // device mirrors of m, v (CUDA builds), made at the first GPU step from m, v
  std::unique_ptr<Device> dev_;
};

}  // namespace bytelm
