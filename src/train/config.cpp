#include "train/config.h"

#include <cmath>
#include <functional>
#include <map>
#include <type_traits>
#include <climits>

#include "core/error.h"
#include "core/json.h"

namespace bytelm {

namespace {

// One table drives parsing, flags and serialisation, so a key cannot be known to one and not the others.
struct Key {
  const char* name;
  std::function<void(RunConfig&, const Json&, const std::string&)> set;
  std::function<std::string(const RunConfig&)> get;
  bool model;         // belongs to the model config (else training)
  bool text = false;  // a string: a flag's value is taken as it is, not parsed as JSON
  // The families a model key applies to (null: all). Configs are written with their family's keys only; any
  // key is read for any family (the defaults stand in for the rest).
  bool (*applies)(const ModelConfig&) = nullptr;
};

bool transformer_or_hybrid(const ModelConfig& m) { return m.arch == "transformer" || m.arch == "hybrid"; }
bool hybrid_only(const ModelConfig& m) { return m.arch == "hybrid"; }
bool entropy_patching(const ModelConfig& m) { return m.patching == "entropy"; }

// The key, written for the families `applies` accepts only.
Key only_for(bool (*applies)(const ModelConfig&), Key k) {
  k.applies = applies;
  return k;
}

template <class F>
Key int_key(const char* name, F field, bool model) {
  return {name,
          [=](RunConfig& c, const Json& v, const std::string& what) {
            int64_t x = v.as_int(what + ": key '" + name + "'");
            if (x < INT32_MIN || x > INT32_MAX) throw Error(what + ": key '" + name + "' is out of range");
            field(c) = (std::remove_reference_t<decltype(field(c))>)x;
          },
          [=](const RunConfig& c) { return std::to_string(field(const_cast<RunConfig&>(c))); }, model};
}

template <class F>
Key text_key(const char* name, F field, bool model) {
  return {name, [=](RunConfig& c, const Json& v, const std::string& what) { field(c) = v.as_string(what + ": key '" + name + "'"); },
          [=](const RunConfig& c) { return json_quote(field(const_cast<RunConfig&>(c))); }, model, true};
}

template <class F>
Key num_key(const char* name, F field, bool model = false) {
  return {name, [=](RunConfig& c, const Json& v, const std::string& what) { field(c) = v.as_number(what + ": key '" + name + "'"); },
          [=](const RunConfig& c) { return json_number(field(const_cast<RunConfig&>(c))); }, model};
}

const std::vector<Key>& keys() {
  static const std::vector<Key> k = {
      text_key("model", [](RunConfig& c) -> std::string& { return c.model.arch; }, true),
      int_key("d", [](RunConfig& c) -> int& { return c.model.d; }, true),
      int_key("layers", [](RunConfig& c) -> int& { return c.model.layers; }, true),
      int_key("patch", [](RunConfig& c) -> int& { return c.model.patch; }, true),
      text_key("patching", [](RunConfig& c) -> std::string& { return c.model.patching; }, true),
      only_for(entropy_patching,
               num_key("entropy_threshold", [](RunConfig& c) -> double& { return c.model.entropy_threshold; }, true)),
      // the transformer and hybrid families
      only_for(transformer_or_hybrid, int_key("head_dim", [](RunConfig& c) -> int& { return c.model.head_dim; }, true)),
      only_for(transformer_or_hybrid, int_key("context", [](RunConfig& c) -> int& { return c.model.context; }, true)),
      only_for(transformer_or_hybrid, int_key("rope", [](RunConfig& c) -> int& { return c.model.rope; }, true)),
      only_for(transformer_or_hybrid, int_key("tie_embeddings", [](RunConfig& c) -> int& { return c.model.tie_embeddings; }, true)),
      only_for(transformer_or_hybrid, num_key("softcap", [](RunConfig& c) -> double& { return c.model.softcap; }, true)),
      only_for(transformer_or_hybrid, num_key("mlp_leak", [](RunConfig& c) -> double& { return c.model.mlp_leak; }, true)),
      only_for(transformer_or_hybrid, int_key("smear", [](RunConfig& c) -> int& { return c.model.smear; }, true)),
      only_for(transformer_or_hybrid, int_key("bigram_buckets", [](RunConfig& c) -> int& { return c.model.bigram_buckets; }, true)),
      only_for(transformer_or_hybrid, int_key("bigram_dim", [](RunConfig& c) -> int& { return c.model.bigram_dim; }, true)),
      only_for(transformer_or_hybrid, int_key("unet", [](RunConfig& c) -> int& { return c.model.unet; }, true)),
      only_for(hybrid_only, text_key("hybrid_layers", [](RunConfig& c) -> std::string& { return c.model.hybrid_layers; }, true)),
      only_for(hybrid_only, int_key("conv_len", [](RunConfig& c) -> int& { return c.model.conv_len; }, true)),
      int_key("steps", [](RunConfig& c) -> int& { return c.train.steps; }, false),
      int_key("batch", [](RunConfig& c) -> int& { return c.train.batch; }, false),
      int_key("seq", [](RunConfig& c) -> int& { return c.train.seq; }, false),
      num_key("lr", [](RunConfig& c) -> double& { return c.train.lr; }),
      num_key("min_lr_frac", [](RunConfig& c) -> double& { return c.train.min_lr_frac; }),
      int_key("warmup", [](RunConfig& c) -> int& { return c.train.warmup; }, false),
      num_key("weight_decay", [](RunConfig& c) -> double& { return c.train.weight_decay; }),
      num_key("beta1", [](RunConfig& c) -> double& { return c.train.beta1; }),
      num_key("beta2", [](RunConfig& c) -> double& { return c.train.beta2; }),
      num_key("clip", [](RunConfig& c) -> double& { return c.train.clip; }),
      {"seed", [](RunConfig& c, const Json& v, const std::string& what) {
         int64_t s = v.as_int(what + ": key 'seed'");
         if (s < 0) throw Error(what + ": key 'seed' must be >= 0");
         c.train.seed = (uint64_t)s;
       },
       [](const RunConfig& c) { return std::to_string(c.train.seed); }, false},
      int_key("eval_every", [](RunConfig& c) -> int& { return c.train.eval_every; }, false),
      num_key("eval_seconds", [](RunConfig& c) -> double& { return c.train.eval_seconds; }),
      int_key("eval_bytes", [](RunConfig& c) -> int64_t& { return c.train.eval_bytes; }, false),
      num_key("val_fraction", [](RunConfig& c) -> double& { return c.train.val_fraction; }),
      int_key("log_every", [](RunConfig& c) -> int& { return c.train.log_every; }, false),
  };
  return k;
}

const Key& find_key(const std::string& name, const std::string& what) {
  for (const Key& k : keys())
    if (name == k.name) return k;
  std::string known;
  for (const Key& k : keys()) known += (known.empty() ? "" : ", ") + std::string(k.name);
  throw Error(what + ": unknown key '" + name + "' (known keys: " + known + ")");
}

std::string object_json(bool model, const RunConfig& c) {
  std::string s = "{";
  for (const Key& k : keys())
    if (k.model == model && (!k.applies || k.applies(c.model)))
      s += (s.size() > 1 ? "," : "") + json_quote(k.name) + ":" + k.get(c);
  return s + "}";
}

}  // namespace

std::vector<std::string> preset_names() {
  return {"ssm-demo",  "ssm-2m",          "ssm-10m",         "ssm-100m", "mamba-1m", "mamba-10m", "mamba-100m",
          "transformer-10m", "transformer-30m", "hybrid-10m"};
}

RunConfig preset(const std::string& name) {
  RunConfig c;
  if (name == "ssm-demo") {
    // Trains to a readable sample on 2 CPU cores in minutes. P=1: at this size, running every byte through
    // the blocks buys more than patching saves (measured on Shakespeare at d128 L4: 3.19 vs 3.41 val bpb after 100 steps).
    c.model = {"ssm", 128, 4, 1};
    c.train.steps = 1000;
    c.train.batch = 16;
    c.train.seq = 256;
    c.train.lr = 1e-2;
    c.train.eval_every = 200;
  } else if (name == "ssm-2m") {
    c.model = {"ssm", 256, 4, 2};
  } else if (name == "ssm-10m") {
    c.model = {"ssm", 512, 6, 2};
  } else if (name == "ssm-100m") {
    c.model = {"ssm", 1024, 16, 2};
    c.train.lr = 6e-4;
  } else if (name == "mamba-1m") {
    // MambaByte's block (expand 2, state 16, conv 4), deep for its width as its models are: 966,912 parameters.
    // lr 5e-3 led 2e-3 and 1e-2 on Shakespeare (val bpb 2.37 vs 2.44 and 2.41 after 200 steps of 8 x 128).
    c.model = {"mamba", 128, 8, 1};
    c.train.lr = 5e-3;
  } else if (name == "mamba-10m") {
    c.model = {"mamba", 256, 22, 1};  // 9,708,032 parameters
    c.train.lr = 2e-3;
  } else if (name == "mamba-100m") {
    c.model = {"mamba", 768, 26, 1};  // 98,280,960 parameters
    c.train.lr = 6e-4;
  } else if (name == "transformer-10m") {
    c.model = {"transformer", 320, 8, 1};  // 5 heads of 64
    c.train.lr = 1e-3;
  } else if (name == "transformer-30m") {
    c.model = {"transformer", 512, 10, 1};  // 8 heads of 64
    c.train.lr = 8e-4;
  } else if (name == "hybrid-10m") {
    // long convolutions in the bottom half, where local byte patterns are, attention above (untuned;
    // `hybrid_layers` moves them)
    c.model = {"hybrid", 320, 8, 1};
    c.model.hybrid_layers = "ssssaaaa";
    c.train.lr = 1e-3;
  } else {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown preset '" + name + "' (known: " + known + ")");
  }
  return c;
}

void apply_config_json(RunConfig& cfg, const Json& j, const std::string& what) {
  if (j.kind != Json::Kind::Object) throw Error(what + ": a config must be a JSON object");
  for (const auto& [name, value] : j.object) find_key(name, what).set(cfg, value, what);
}

void set_config_key(RunConfig& cfg, const std::string& key, const std::string& value, const std::string& what) {
  const Key& k = find_key(key, what);
  Json v;
  if (k.text) {
    v.kind = Json::Kind::String;
    v.string = value;
  } else {
    try {
      v = json_parse(value, what);
    } catch (const Error&) {
      throw Error(what + ": '" + value + "' is not a number");
    }
  }
  k.set(cfg, v, what);
}

void validate(const RunConfig& c) {
  const TrainConfig& t = c.train;
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw Error(msg);
  };
  need(t.steps >= 1, "steps must be >= 1");
  need(t.batch >= 1, "batch must be >= 1");
  need(t.seq >= 1, "seq must be >= 1");
  need((int64_t)t.batch * t.seq <= (int64_t)1 << 28, "batch * seq is too large (limit 2^28 bytes per step)");
  need(t.lr > 0 && std::isfinite(t.lr), "lr must be > 0");
  need(t.min_lr_frac >= 0 && t.min_lr_frac <= 1, "min_lr_frac must be in [0, 1]");
  need(t.warmup >= -1, "warmup must be >= 0 (or -1 for automatic)");
  need(t.weight_decay >= 0, "weight_decay must be >= 0");
  need(t.beta1 >= 0 && t.beta1 < 1 && t.beta2 >= 0 && t.beta2 < 1, "beta1 and beta2 must be in [0, 1)");
  need(t.clip >= 0, "clip must be >= 0 (0 turns clipping off)");
  need(t.eval_every >= 1, "eval_every must be >= 1");
  need(t.eval_seconds >= 0 && std::isfinite(t.eval_seconds), "eval_seconds must be >= 0 (0 turns it off)");
  need(t.eval_bytes >= 2, "eval_bytes must be >= 2");
  need(t.val_fraction > 0 && t.val_fraction < 1, "val_fraction must be in (0, 1)");
  need(t.log_every >= 1, "log_every must be >= 1");
  param_count(c.model);  // checks the model's own ranges
}

std::string model_config_json(const ModelConfig& m) {
  RunConfig c;
  c.model = m;
  return object_json(true, c);
}

std::string train_config_json(const TrainConfig& t) {
  RunConfig c;
  c.train = t;
  return object_json(false, c);
}

std::vector<std::string> config_keys() {
  std::vector<std::string> names;
  for (const Key& k : keys()) names.push_back(k.name);
  return names;
}

std::vector<std::string> model_config_keys() {
  std::vector<std::string> names;
  for (const Key& k : keys())
    if (k.model) names.push_back(k.name);
  return names;
}

}  // namespace bytelm
