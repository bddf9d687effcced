#include "train/checkpoint.h"

#include <filesystem>

#include "core/error.h"
#include "core/json.h"
#include "train/safetensors.h"

namespace bytelm {

static const char* kFormat = "bytelm-checkpoint-1";

std::string checkpoint_path(const std::string& file_or_dir) {
  if (std::filesystem::is_directory(file_or_dir)) return (std::filesystem::path(file_or_dir) / "checkpoint.safetensors").string();
  return file_or_dir;
}

void save_checkpoint(const std::string& path, Model<float>& model, AdamW& opt, const RunConfig& cfg, int step) {
  model.pull_params();
  opt.pull_moments();
  std::vector<TensorRef> tensors;
  for (const ParamInfo& p : model.param_info()) tensors.push_back({p.name, p.shape, model.params().data() + p.offset});
  for (const ParamInfo& p : model.param_info()) tensors.push_back({"optim.m." + p.name, p.shape, opt.m.data() + p.offset});
  for (const ParamInfo& p : model.param_info()) tensors.push_back({"optim.v." + p.name, p.shape, opt.v.data() + p.offset});
  safetensors_write(path, tensors,
                    {{"format", kFormat},
                     {"model", model_config_json(model.config())},
                     {"train", train_config_json(cfg.train)},
                     {"step", std::to_string(step)}});
}

LoadedCheckpoint load_checkpoint(const std::string& file_or_dir, bool with_optimizer, const std::string& device) {
  std::string path = checkpoint_path(file_or_dir);
  Safetensors st = safetensors_read(path);
  auto meta = [&](const char* key) -> const std::string& {
    auto it = st.metadata.find(key);
    if (it == st.metadata.end())
      throw Error(path + " is not a bytelm checkpoint (no '" + key + "' in its metadata)");
    return it->second;
  };
  if (meta("format") != kFormat) throw Error(path + " has checkpoint format '" + meta("format") + "', expected " + kFormat);
  LoadedCheckpoint ck;
  apply_config_json(ck.cfg, json_parse(meta("model"), path + " model config"), path + " model config");
  apply_config_json(ck.cfg, json_parse(meta("train"), path + " train config"), path + " train config");
  ck.step = (int)json_parse(meta("step"), path + " step").as_int(path + " step");
  if (!is_known_architecture(ck.cfg.model.arch))
    throw Error(path + " holds a '" + ck.cfg.model.arch + "' model, which this build cannot load (known: " +
                known_architectures() + ")");
  ck.model = make_model_on(device, ck.cfg.model, 0);
  auto copy_into = [&](const std::string& name, const ParamInfo& p, float* dst) {
    const Tensor& t = st.get(name);
    if (t.shape != p.shape) {
      std::string want, got;
      for (auto s : p.shape) want += (want.empty() ? "" : "x") + std::to_string(s);
      for (auto s : t.shape) got += (got.empty() ? "" : "x") + std::to_string(s);
      throw Error(path + ": tensor " + name + " has shape " + got + " but the model config needs " + want);
    }
    std::copy(t.data.begin(), t.data.end(), dst + p.offset);
  };
  for (const ParamInfo& p : ck.model->param_info()) copy_into(p.name, p, ck.model->params().data());
  ck.model->push_params();
  if (with_optimizer) {
    ck.opt = std::make_unique<AdamW>(ck.model->params().size());
    for (const ParamInfo& p : ck.model->param_info()) {
      copy_into("optim.m." + p.name, p, ck.opt->m.data());
      copy_into("optim.v." + p.name, p, ck.opt->v.data());
    }
  }
  return ck;
}

}  // namespace bytelm
