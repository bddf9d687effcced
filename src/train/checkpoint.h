// Checkpoints: safetensors files holding the parameters (by name), the
// optimizer moments ("optim.m.<name>", "optim.v.<name>") and, in the
// metadata, the model and training config and the step reached.
#pragma once
#include <memory>
#include <string>

#include "models/model.h"
#include "train/adamw.h"
#include "train/config.h"

namespace bytelm {

// A directory names its checkpoint.safetensors; a file names itself.
std::string checkpoint_path(const std::string& file_or_dir);

// Written atomically (temp file + rename). A GPU model's parameters and the
// optimizer's moments are copied to the host first.
void save_checkpoint(const std::string& path, Model<float>& model, AdamW& opt, const RunConfig& cfg, int step);

struct LoadedCheckpoint {
  RunConfig cfg;
  int step = 0;
  std::unique_ptr<Model<float>> model;
  std::unique_ptr<AdamW> opt;  // only when asked for
};

// Errors (one line each): not a bytelm checkpoint, unknown architecture, a
// tensor missing or of the wrong shape for the config, plus every file defect
// that safetensors_read detects (truncation, corruption).
// The model is built on `device` ("cpu", "cuda" or "cuda-fp32").
LoadedCheckpoint load_checkpoint(const std::string& file_or_dir, bool with_optimizer, const std::string& device = "cpu");

}  // namespace bytelm
