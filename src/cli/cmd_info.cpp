#include <cmath>
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/json.h"
#include "train/bench.h"
#include "train/config.h"

namespace bytelm {

int cmd_info(int argc, char** argv) {
  Command cmd{"info", "Size and cost of a model config, as JSON.", "(--preset NAME | --config FILE) [options]",
              "flops_per_byte counts multiply-adds x2 of the matrix products (forward); training costs about\n"
              "3x that. memory_bytes estimates CPU training memory: fp32 parameters, gradients and two\n"
              "AdamW moments, plus the activations kept for one step of --batch x --seq bytes.",
              {{"preset", "NAME",
                "ssm-demo, ssm-2m, ssm-10m, ssm-100m, mamba-1m, mamba-10m, mamba-100m, transformer-10m, "
                "transformer-30m or hybrid-10m (default ssm-2m)"},
               {"config", "FILE", "JSON object of config keys"},
               {"batch", "N", "windows per step for the memory estimate"},
               {"seq", "N", "bytes per window for the memory estimate"}}};
  for (const Flag& f : model_key_flags()) cmd.flags.push_back(f);
  Args args = Args::parse(cmd, argc, argv);
  if (args.help) return std::fputs(cmd.help_text().c_str(), stdout), 0;
  std::vector<std::string> keys = model_config_keys();
  keys.insert(keys.end(), {"batch", "seq"});
  RunConfig cfg = config_from_flags(args, keys);
  validate(cfg);
  const ModelConfig& m = cfg.model;
  double flops = train_flops_per_byte(m) / 3;  // the forward's share
  int64_t params = param_count(m);
  double tokens = (double)cfg.train.batch * cfg.train.seq;
  double memory = 16.0 * params + 4.0 * tokens * train_activation_floats_per_byte(m);
  std::printf("{\"model\":%s,\"params\":%lld,\"flops_per_byte\":%s,\"train_flops_per_byte\":%s,"
              "\"batch\":%d,\"seq\":%d,\"memory_bytes\":%s}\n",
              model_config_json(m).c_str(), (long long)params, json_number(std::round(flops)).c_str(),
              json_number(std::round(3 * flops)).c_str(), cfg.train.batch, cfg.train.seq,
              json_number(std::round(memory)).c_str());
  return 0;
}

}  // namespace bytelm
