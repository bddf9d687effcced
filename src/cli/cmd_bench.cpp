#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/json.h"
#include "train/bench.h"

namespace bytelm {

int cmd_bench(int argc, char** argv) {
  Command cmd{"bench", "Time training steps of a config and print one JSON line.",
              "(--preset NAME | --config FILE) [--device cuda] [--batch B --seq T] [options]",
              "Runs --warmup untimed steps, then --steps timed ones (forward, backward, AdamW), on uniform\n"
              "random bytes unless --data is given. Reports bytes/s, ms/step, TFLOP/s of the matrix products\n"
              "(3x the forward's), MFU against 989 TFLOP/s (H100/H200 dense bf16) on GPUs, peak GPU memory\n"
              "held by bytelm's buffers, parameters, device name and the git commit of the build.",
              {{"preset", "NAME",
                "ssm-demo, ssm-2m, ssm-10m, ssm-100m, mamba-1m, mamba-10m, mamba-100m, transformer-10m, "
                "transformer-30m or hybrid-10m (default ssm-2m)"},
               {"config", "FILE", "JSON object of config keys"},
               {"batch", "N", "windows per step"},
               {"seq", "N", "bytes per window"},
               {"lr", "X", "learning rate"},
               {"warmup", "N", "untimed steps first (default 5)"},
               {"steps", "N", "timed steps (default 20)"},
               {"data", "PATH", "train on these bytes instead of random ones"},
               {"device", "cpu|cuda|cuda-tf32|cuda-fp32", "where to run (default cpu); cuda: bf16 activations and products, fp32 weights"},
               {"profile", "", "then time each op of as many steps again (GPU), table on stderr"},
               {"tune-products", "", "GPU: each matrix product's kernel the fastest of cuBLASLt's candidates, timed "
                                     "on first use (as train --tune-products)"},
               {"threads", "N", "CPU threads (default: all cores)"}}};
  for (const Flag& f : model_key_flags()) cmd.flags.push_back(f);
  Args args = Args::parse(cmd, argc, argv);
  if (args.help) return std::fputs(cmd.help_text().c_str(), stdout), 0;
  BenchOptions o;
  o.device = apply_runtime_flags(args);
  std::vector<std::string> keys = model_config_keys();
  keys.insert(keys.end(), {"batch", "seq", "lr"});
  o.cfg = config_from_flags(args, keys);
  o.warmup = args.get_int("warmup", 5);
  o.steps = args.get_int("steps", 20);
  o.data = args.get("data");
  o.profile = args.has("profile");
  o.tune_products = args.has("tune-products");
  std::printf("%s\n", run_bench(o).c_str());
  return 0;
}

}  // namespace bytelm
