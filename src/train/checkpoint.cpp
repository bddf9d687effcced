#include "train/checkpoint.h"

#include <filesystem>

#include "core/error.h"
#include "core/json.h"
#include "layers/quantize.h"
#include "train/safetensors.h"

namespace bytelm {

static const char* kFormat = "bytelm-checkpoint-1";
static const char* kQuantizedFormat = "bytelm-quantized-1";

// Stored as [rows, cols] matrices (cols: the last dimension).
bool is_quantized_weight(const ParamInfo& p) { return p.decay && p.shape.size() >= 2 && p.size > 0; }
static int64_t matrix_cols(const ParamInfo& p) { return p.shape.back(); }
static int64_t matrix_rows(const ParamInfo& p) { return (int64_t)p.size / matrix_cols(p); }

static std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s;
  for (auto d : shape) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

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

void save_quantized_checkpoint(const std::string& path, Model<float>& model, const RunConfig& cfg, int step, int bits,
                               int group, const std::map<size_t, ProductInputs>* inputs,
                               const std::function<void(int done, int total)>& progress) {
  check_quantization(bits, group);
  model.pull_params();
  std::vector<QuantizedMatrix> matrices;
  matrices.reserve(model.param_info().size());  // the TensorRefs below point into its elements
  std::vector<TensorRef> tensors;
  int total = 0;
  for (const ParamInfo& p : model.param_info()) total += is_quantized_weight(p);
  for (const ParamInfo& p : model.param_info()) {
    const float* w = model.params().data() + p.offset;
    if (!is_quantized_weight(p)) {
      tensors.push_back({p.name, p.shape, w});
      continue;
    }
    auto calibrated = inputs ? inputs->find(p.offset) : std::map<size_t, ProductInputs>::const_iterator{};
    bool gptq = inputs && calibrated != inputs->end() && calibrated->second.count > 0;
    bool table = inputs && !gptq;  // only looked up: GPTQ has nothing to spread by, so it keeps 8 bits
    const QuantizedMatrix& q = matrices.emplace_back(
        gptq ? quantize_matrix_gptq(w, matrix_rows(p), matrix_cols(p), bits, group, calibrated->second.gram)
             : quantize_matrix(w, matrix_rows(p), matrix_cols(p), table ? 8 : bits, group));
    tensors.push_back({p.name, {q.rows, q.code_bytes_a_row()}, q.codes.data(), q.bits == 8 ? "I8" : "U8"});
    tensors.push_back({p.name + ".scale", {q.rows, q.groups()}, q.scales.data()});
    if (progress) progress((int)matrices.size(), total);
  }
  safetensors_write(path, tensors,
                    {{"format", kQuantizedFormat},
                     {"model", model_config_json(model.config())},
                     {"train", train_config_json(cfg.train)},
                     {"step", std::to_string(step)},
                     {"quant", "{\"bits\":" + std::to_string(bits) + ",\"group\":" + std::to_string(group) +
                                   ",\"method\":\"" + (inputs ? "gptq" : "rtn") + "\"}"}});
}

LoadedCheckpoint load_checkpoint(const std::string& file_or_dir, bool with_optimizer, const std::string& device,
                                 QuantizedUse quantized_use) {
  std::string path = checkpoint_path(file_or_dir);
  Safetensors st = safetensors_read(path);
  auto meta = [&](const char* key) -> const std::string& {
    auto it = st.metadata.find(key);
    if (it == st.metadata.end())
      throw Error(path + " is not a bytelm checkpoint (no '" + key + "' in its metadata)");
    return it->second;
  };
  const bool quantized = meta("format") == kQuantizedFormat;
  if (meta("format") != kFormat && !quantized)
    throw Error(path + " has checkpoint format '" + meta("format") + "', expected " + kFormat + " or " +
                kQuantizedFormat);
  if (quantized && with_optimizer)
    throw Error(path + " is a quantized checkpoint (weights only, no optimizer state), so training cannot go on from "
                "it: resume from the checkpoint it was quantized from");
  LoadedCheckpoint ck;
  int group = 0;
  if (quantized) {
    Json quant = json_parse(meta("quant"), path + " quant");
    auto field = [&](const char* key) {
      const Json* v = quant.find(key);
      if (!v) throw Error(path + " is a quantized checkpoint without \"" + key + "\" in its quant metadata");
      return (int)v->as_int(path + " quant " + key);
    };
    ck.quant_bits = field("bits");
    group = field("group");
    check_quantization(ck.quant_bits, group);
  }
  apply_config_json(ck.cfg, json_parse(meta("model"), path + " model config"), path + " model config");
  apply_config_json(ck.cfg, json_parse(meta("train"), path + " train config"), path + " train config");
  ck.step = (int)json_parse(meta("step"), path + " step").as_int(path + " step");
  if (!is_known_architecture(ck.cfg.model.arch))
    throw Error(path + " holds a '" + ck.cfg.model.arch + "' model, which this build cannot load (known: " +
                known_architectures() + ")");
  ck.model = make_model_on(device, ck.cfg.model, 0);
  auto tensor = [&](const std::string& name, const std::vector<int64_t>& shape,
                    const std::string& dtype) -> const Tensor& {
    const Tensor& t = st.get(name);
    if (t.dtype != dtype) throw Error(path + ": tensor " + name + " has dtype " + t.dtype + ", expected " + dtype);
    if (t.shape != shape)
      throw Error(path + ": tensor " + name + " has shape " + shape_text(t.shape) + " but the model config needs " +
                  shape_text(shape));
    return t;
  };
  auto copy_into = [&](const std::string& name, const ParamInfo& p, float* dst) {
    const Tensor& t = tensor(name, p.shape, "F32");
    std::copy(t.data.begin(), t.data.end(), dst + p.offset);
  };
  std::vector<std::pair<size_t, QuantizedMatrix>> matrices;  // a quantized checkpoint's, by parameter offset
  auto dequantize_into = [&](const ParamInfo& p, float* dst) {
    QuantizedMatrix q;
    const std::string& dtype = st.get(p.name).dtype;  // a tensor's own bits: I8 8, U8 4 (calibrated tables keep 8)
    if (dtype != "I8" && dtype != "U8")
      throw Error(path + ": tensor " + p.name + " has dtype " + dtype + ", expected I8 or U8 (quantized codes)");
    q.bits = dtype == "I8" ? 8 : 4, q.group = group, q.rows = matrix_rows(p), q.cols = matrix_cols(p);
    q.codes = tensor(p.name, {q.rows, q.code_bytes_a_row()}, dtype).bytes;
    q.scales = tensor(p.name + ".scale", {q.rows, q.groups()}, "F32").data;
    dequantize_matrix(q, dst + p.offset);
    matrices.emplace_back(p.offset, std::move(q));
  };
  for (const ParamInfo& p : ck.model->param_info()) {
    if (quantized && is_quantized_weight(p)) dequantize_into(p, ck.model->params().data());
    else copy_into(p.name, p, ck.model->params().data());
  }
  ck.model->push_params();
  ck.model->use_quantized_weights(matrices, quantized_use);
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
