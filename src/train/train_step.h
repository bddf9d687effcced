// One training step on a batch: zero the gradients, forward, backward, AdamW.
//
// On a GPU model the step's device work has no host round trip inside: the
// second call records it into a CUDA graph (the first runs it directly, so
// every buffer reaches its size), and later calls replay the graph. Around a
// replay the host copies the batch into page-locked memory and writes the
// step's learning rate where the graph reads it, then waits once for the loss
// and the gradient norm. The graph is recorded again whenever the batch shape
// changes or a device buffer was reallocated (say by a larger evaluation).
#pragma once
#include <cstdint>
#include <memory>

#include "models/model.h"
#include "train/adamw.h"
#include "train/config.h"

namespace bytelm {

struct StepResult {
  float loss = 0;         // mean loss of the batch before the update, in nats
  double grad_norm = 0;   // global gradient norm before clipping
  float extra_loss = 0;   // the part of loss that is an auxiliary objective's (Model::last_extra_loss), in nats
};

class TrainStep {
 public:
  // tune_products: a GPU model's matrix products take the fastest of cuBLASLt's candidate kernels, timed on first
  // use (Model::tune_products); off, the heuristic's, the same in every run.
  TrainStep(Model<float>& model, AdamW& opt, bool tune_products = false);
  ~TrainStep();
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // x, y: [B, seq] inputs and targets on the host; `step` is 0-based, lr its learning rate.
  StepResult run(const uint8_t* x, const uint8_t* y, int B, int seq, const TrainConfig& t, int step, double lr);

 private:
  StepResult run_direct(const uint8_t* x, const uint8_t* y, int B, int seq, const TrainConfig& t, int step, double lr);
  Model<float>& model_;
  AdamW& opt_;
  struct Graph;  // CUDA builds: the pinned batch, the recorded graph and what it was recorded for
  std::unique_ptr<Graph> graph_;
};

}  // namespace bytelm
