// Training throughput of a config on a device, measured by the program itself.
#pragma once
#include <string>

#include "train/config.h"

namespace bytelm {

struct BenchOptions {
  RunConfig cfg;
  std::string device = "cpu";
  std::string data;  // empty: uniform random bytes (as the PyTorch peers use by default)
  int warmup = 5;    // untimed steps first
  int steps = 20;    // timed steps
  bool profile = false;  // then as many steps again, op by op (GPU), reported on stderr
  bool tune_products = false;  // GPU: TrainStep's tune_products
};

// One JSON object: impl, device, device_name, commit, model, params, batch, seq, steps, step_ms,
// bytes_per_s, flops_per_byte, tflops, mfu (against the bf16 dense peak on GPUs), peak_gib, loss_bpb.
std::string run_bench(const BenchOptions& opt);

// What runs a model on `device` (cpu, cuda, cuda-fp32): "cpu (N threads)", or the name of CUDA device 0.
std::string device_description(const std::string& device);

// Matrix-product FLOPs of one training step per byte (forward + backward = 3x forward).
double train_flops_per_byte(const ModelConfig& m);

// Floats of activations (and their gradients) that one CPU training step holds per byte of its batch.
double train_activation_floats_per_byte(const ModelConfig& m);

}  // namespace bytelm
