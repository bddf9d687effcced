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
  // norm before clipping. On a GPU the step's scalars (lr, bias corrections)
  // travel through page-locked memory, so the update can be recorded into a
  // CUDA graph: while the model's stream is captured, step returns NaN.
  double step(Model<float>& model, const TrainConfig& t, int step, double lr);
  // For a replay of a recorded update: writes the scalars of `step` where the
  // recording reads them (GPU only; step() does this itself).
  void set_step(const TrainConfig& t, int step, double lr);
  // The norm the last update saw (for a GPU one, once its stream has finished).
  double last_norm() const;
  // For a GPU model the moments live on the device: this copies them into m, v.
  void pull_moments();

 private:
  struct Device;  // device mirrors of m, v (CUDA builds), made at the first GPU step from m, v
  std::unique_ptr<Device> dev_;
  double last_norm_ = 0;  // CPU updates
};

}  // namespace bytelm
