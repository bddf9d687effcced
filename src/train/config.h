// A run's whole configuration: the model and how to train it. Presets give
// starting points; a JSON config file and then command-line flags override.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/model.h"

namespace bytelm {

struct TrainConfig {
  int steps = 1000;
  int batch = 16;
  int seq = 256;             // bytes per training window
  double lr = 2e-3;          // peak learning rate
  double min_lr_frac = 0.1;  // cosine decays to lr * min_lr_frac
  int warmup = -1;           // -1: min(100, steps / 10)
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95;
  double clip = 1.0;  // global gradient-norm clip (0 = off)
  uint64_t seed = 1;
  int eval_every = 100;      // steps between validation (and checkpoints)
  double eval_seconds = 0;   // also validate (and checkpoint) once this many training seconds have passed since the
                             // last time (0: off): a fast model then spends no more of a clock on it than a slow one
  int64_t eval_bytes = 262144;  // validation bytes scored each time (the head of the val split)
  double val_fraction = 0.05;   // tail of --data held out when no --val is given
  int log_every = 10;

  int warmup_steps() const { return warmup >= 0 ? warmup : std::min(100, steps / 10); }
};

struct RunConfig {
  ModelConfig model;
  TrainConfig train;
};

// Names of the presets, and the run config of one (Error naming the known ones if unknown).
std::vector<std::string> preset_names();
RunConfig preset(const std::string& name);

struct Json;
// Applies the keys of a JSON object (a config file's contents) over `cfg`;
// an unknown key or a value of the wrong type is an Error naming `what` and the key.
void apply_config_json(RunConfig& cfg, const Json& object, const std::string& what);
// Sets one key from its text form (used for flags such as --d 512); same errors.
void set_config_key(RunConfig& cfg, const std::string& key, const std::string& value, const std::string& what);
// Checks ranges (batch >= 1, seq >= 1, ...); Error on the first bad value.
void validate(const RunConfig& cfg);

std::string model_config_json(const ModelConfig& m);
std::string train_config_json(const TrainConfig& t);
std::vector<std::string> config_keys();
std::vector<std::string> model_config_keys();  // those of the ModelConfig, in table order

}  // namespace bytelm
