#include "models/model.h"

#include <algorithm>

#include "core/error.h"
#include "models/mamba.h"
#include "models/ssm.h"
#include "models/transformer.h"

namespace bytelm {

static const char* const kArchitectures[] = {"ssm", "mamba", "transformer", "hybrid"};
static const char* const kPatchings[] = {"mean", "attn", "none", "local", "soft", "entropy"};

bool is_known_architecture(const std::string& arch) {
  return std::find(std::begin(kArchitectures), std::end(kArchitectures), arch) != std::end(kArchitectures);
}

std::string known_architectures() {
  std::string list;
  for (const char* a : kArchitectures) list += (list.empty() ? "" : ", ") + std::string(a);
  return list;
}

static void check_config(const ModelConfig& c) {
  if (!is_known_architecture(c.arch))
    throw Error("unknown model architecture '" + c.arch + "' (known: " + known_architectures() + ")");
  if (c.d < 1 || c.d > 16384) throw Error("model width d must be in 1..16384, got " + std::to_string(c.d));
  if (c.layers < 0 || c.layers > 256) throw Error("layers must be in 0..256, got " + std::to_string(c.layers));
  if (c.patch < 1 || c.patch > 64) throw Error("patch must be in 1..64, got " + std::to_string(c.patch));
  if (std::find(std::begin(kPatchings), std::end(kPatchings), c.patching) == std::end(kPatchings))
    throw Error("patching must be mean, attn, none, local, soft or entropy, got '" + c.patching + "'");
  if (c.patching == "none" && c.patch != 1)
    throw Error("patching none makes every byte its own patch: patch must be 1, got " + std::to_string(c.patch));
  if (c.arch == "mamba" && c.patch != 1)
    throw Error("the mamba family reads every byte: patch must be 1, got " + std::to_string(c.patch));
  if (c.arch == "mamba" && c.patching != "mean" && c.patching != "none")
    throw Error("the mamba family reads every byte: patching " + c.patching + " does not apply to it");
  if (!(c.entropy_threshold >= 0 && c.entropy_threshold < 8))  // 8 bits: no byte is ever that uncertain
    throw Error("entropy_threshold must be in [0, 8) bits, got " + std::to_string(c.entropy_threshold));
  if (c.arch == "transformer" || c.arch == "hybrid") check_transformer_config(c);
}

template <class T>
std::unique_ptr<Model<T>> make_model(const ModelConfig& config, uint64_t seed) {
  check_config(config);
  if (config.arch == "mamba") return make_mamba_model<T>(config, seed);
  if (config.arch == "transformer" || config.arch == "hybrid") return make_transformer_model<T>(config, seed);
  return make_ssm_model<T>(config, seed);
}

std::unique_ptr<Model<float>> make_model_on(const std::string& device, const ModelConfig& config, uint64_t seed) {
  if (device == "cpu") return make_model<float>(config, seed);
  if (device != "cuda" && device != "cuda-tf32" && device != "cuda-fp32")
    throw Error("--device must be cpu, cuda, cuda-tf32 or cuda-fp32, got '" + device + "'");
#ifdef BYTELM_WITH_CUDA
  check_config(config);
  std::string gemm = device == "cuda" ? "bf16" : device.substr(5);
  if (config.arch == "mamba") return make_mamba_model_cuda(config, seed, gemm);
  if (config.arch == "transformer" || config.arch == "hybrid") return make_transformer_model_cuda(config, seed, gemm);
  return make_ssm_model_cuda(config, seed, gemm);
#else
  throw Error("--device cuda: this build has no CUDA support (nvcc was not found when it was configured)");
#endif
}

int64_t param_count(const ModelConfig& c) {
  check_config(c);
  if (c.arch == "mamba") return mamba_param_count(c);
  if (c.arch == "transformer" || c.arch == "hybrid") return transformer_param_count(c);
  return ssm_param_count(c);
}

template std::unique_ptr<Model<float>> make_model<float>(const ModelConfig&, uint64_t);
template std::unique_ptr<Model<double>> make_model<double>(const ModelConfig&, uint64_t);

}  // namespace bytelm
