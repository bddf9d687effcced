#include <algorithm>

#include "cli/commands.h"
#include "cli/args.h"
#include "core/error.h"
#include "core/json.h"

namespace bytelm {

std::string flag_of(std::string key) {
  for (char& c : key)
    if (c == '_') c = '-';
  return key;
}

const std::vector<std::pair<std::string, std::string>>& config_key_help() {
  static const std::vector<std::pair<std::string, std::string>> help = {
      {"model", "model family (ssm, mamba, transformer or hybrid)"},
      {"d", "model width"},
      {"layers", "number of blocks"},
      {"patch", "bytes per patch P (1 = no patching; mamba: 1 only)"},
      {"patching", "how a patch pools its bytes: mean (default), attn (learned query), none (patch 1), "
                   "local (and a byte-rate decoder over each patch), soft (learned soft boundaries) or "
                   "entropy (patches of at least patch bytes, closed where a bigram model is unsure)"},
      {"entropy_threshold", "patching entropy: a patch closes where the next byte's entropy exceeds this (bits)"},
      {"head_dim", "transformer/hybrid: attention head width (heads = d / head_dim)"},
      {"context", "transformer/hybrid: positions a generating stream attends to; past them it slides"},
      {"rope", "transformer/hybrid: rotary position embeddings (1) or none (0)"},
      {"tie_embeddings", "transformer/hybrid: the head is the byte embedding (1) or its own matrix (0)"},
      {"softcap", "transformer/hybrid: logits = C tanh(logits / C); 0 = off"},
      {"mlp_leak", "transformer/hybrid: MLP activation leaky_relu(h, X)^2; 0 = ReLU^2"},
      {"smear", "transformer/hybrid: SmearGate on the input embeddings (1) or not (0)"},
      {"bigram_buckets", "transformer/hybrid: rows of the hashed byte-bigram embedding; 0 = off"},
      {"bigram_dim", "transformer/hybrid: width of the bigram embedding, projected to d"},
      {"unet", "transformer/hybrid: U-Net skips from the first half of the layers to the second (1) or not (0)"},
      {"hybrid_layers", "hybrid: a letter a layer, bottom first: a (attention) or s (S4D-Lin long convolution)"},
      {"conv_len", "hybrid: kernel length of the long convolution"},
      {"steps", "total optimizer steps"},
      {"batch", "windows per step"},
      {"seq", "bytes per window"},
      {"lr", "peak learning rate"},
      {"min_lr_frac", "final learning rate as a fraction of --lr (cosine decay)"},
      {"warmup", "linear warmup steps (-1: min(100, steps/10))"},
      {"weight_decay", "AdamW weight decay on matrices"},
      {"beta1", "AdamW beta1"},
      {"beta2", "AdamW beta2"},
      {"clip", "clip the global gradient norm to this (0 = off)"},
      {"seed", "seed for initialisation and data order"},
      {"eval_every", "steps between validation runs and checkpoints"},
      {"eval_seconds", "also validate and checkpoint every X seconds of training (0 = off)"},
      {"eval_bytes", "validation bytes scored each time"},
      {"val_fraction", "tail fraction of --data held out when --val is not given"},
      {"log_every", "steps between lines in metrics.jsonl"},
  };
  return help;
}

Flag key_flag(const std::string& key, const std::string& help) {
  bool text = key == "model" || key == "patching" || key == "hybrid_layers";
  return {flag_of(key), text ? "NAME" : "X", help};
}

std::vector<Flag> model_key_flags(const std::string& suffix) {
  std::vector<Flag> flags;
  std::vector<std::string> model = model_config_keys();
  for (const auto& [key, help] : config_key_help())
    if (std::find(model.begin(), model.end(), key) != model.end()) flags.push_back(key_flag(key, help + suffix));
  return flags;
}

RunConfig config_from_flags(const Args& args, const std::vector<std::string>& keys) {
  if (args.has("preset") && args.has("config")) throw Error("give --preset or --config, not both");
  RunConfig cfg = preset(args.get("preset", "ssm-2m"));
  if (args.has("config")) {
    cfg = RunConfig{};
    apply_config_json(cfg, json_parse_file(args.get("config")), args.get("config"));
  }
  for (const std::string& key : keys)
    if (args.has(flag_of(key))) set_config_key(cfg, key, args.get(flag_of(key)), "--" + flag_of(key));
  return cfg;
}

}  // namespace bytelm
