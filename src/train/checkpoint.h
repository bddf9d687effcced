// Checkpoints: safetensors files holding the parameters (by name), the
// optimizer moments ("optim.m.<name>", "optim.v.<name>") and, in the
// metadata, the model and training config and the step reached. A quantized
// checkpoint (bytelm quantize) holds the weights only, its matrices quantized.
#pragma once
#include <functional>
#include <map>
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

// The weight matrices (the parameters that weight decay applies to: products and embedding tables) as `bits`-bit
// integers in groups of `group` columns with an fp32 scale each (layers/quantize.h): tensor "<name>" (I8 codes, or
// U8 holding two 4-bit codes a byte) and "<name>.scale" (F32); every other parameter in F32, as saved above; no
// optimizer moments. Metadata "quant": {"bits", "group"}. Written atomically.
// The parameters save_quantized_checkpoint quantizes.
bool is_quantized_weight(const ParamInfo& p);
// With `inputs` (infer/calibrate.h), a matrix whose products read calibration rows is quantized by GPTQ
// (quantize_matrix_gptq); one that no product read (an embedding table only looked up) by rounding at 8 bits
// whatever `bits` says: GPTQ has nothing to spread its errors by, and at 4 bits the demo model's embedding alone
// cost 0.024 bits a byte. Metadata "quant" then says "method": "gptq". A tensor's dtype gives its bits.
// `progress`, if set, is told after each matrix how many of how many are done (GPTQ takes minutes at ssm-100m).
void save_quantized_checkpoint(const std::string& path, Model<float>& model, const RunConfig& cfg, int step, int bits,
                               int group, const std::map<size_t, ProductInputs>* inputs = nullptr,
                               const std::function<void(int done, int total)>& progress = {});

struct LoadedCheckpoint {
  RunConfig cfg;
  int step = 0;
  std::unique_ptr<Model<float>> model;
  std::unique_ptr<AdamW> opt;  // only when asked for
  int quant_bits = 0;          // a quantized checkpoint: the bits asked for (its weights come back as fp32)
};

// Errors (one line each): not a bytelm checkpoint, unknown architecture, a
// tensor missing or of the wrong shape for the config, plus every file defect
// that safetensors_read detects (truncation, corruption). A quantized
// checkpoint loads with its matrices dequantized, and never with_optimizer.
// The model is built on `device` ("cpu", "cuda" or "cuda-fp32").
// `quantized_use`: whether a quantized checkpoint's model reads its codes (Model::use_quantized_weights).
LoadedCheckpoint load_checkpoint(const std::string& file_or_dir, bool with_optimizer, const std::string& device = "cpu",
                                 QuantizedUse quantized_use = QuantizedUse::where_it_pays);

}  // namespace bytelm
