// leakcheck: does a model read bytes after the one it predicts? One JSON line, exit 1 if it does.
#include <cmath>
#include <cstdio>
#include <memory>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/json.h"
#include "infer/leakcheck.h"
#include "train/checkpoint.h"
#include "train/config.h"

namespace bytelm {

namespace {

std::string optional_int(int v) { return v < 0 ? "null" : std::to_string(v); }

}  // namespace

int cmd_leakcheck(int argc, char** argv) {
  Command cmd{"leakcheck", "Check that a model never reads the bytes after the one it predicts.",
              "(--ckpt PATH | --preset NAME | --config FILE) [--seq T] [--sequences N] [options]",
              "Output t of a forward is the loss of predicting byte t+1 from bytes 0..t. For each tested t\n"
              "this changes every byte after t (inputs and targets, each to another random byte) and demands\n"
              "that outputs 0..t stay identical to the last bit. A model that leaks sees part of what it\n"
              "predicts: it learns to copy instead of predict, and reports an impossibly low bits per byte\n"
              "that vanishes when it generates, where the future does not exist yet.\n"
              "The model is a checkpoint, or a freshly initialised one of --preset or --config (random\n"
              "weights are enough: a leak is in the wiring, not the weights). The check also fails when\n"
              "changing every input byte moves no output (it could not fail then), and when the same batch\n"
              "gives different outputs twice. Prints one JSON line, {\"verdict\", \"first_leak_position\",\n"
              "\"first_leak_row\", \"max_change\", \"rows_compared\", ...}, the verdict one of pass, leak, vacuous\n"
              "and nondeterministic; exits 0 on pass, else 1 with one line on stderr saying why (for a leak,\n"
              "the first leaking position).",
              {{"ckpt", "PATH", "checkpoint file, or a run directory"},
               {"preset", "NAME", "a fresh model of this preset (default ssm-2m when no --ckpt)"},
               {"config", "FILE", "a fresh model of this JSON config"},
               {"seq", "T", "bytes per random sequence (default: the config's seq)"},
               {"sequences", "N", "random sequences (default 4)"},
               {"positions", "N", "positions t tested (default: every t for seq <= 256, else 128 spread out)"},
               {"batch", "N", "perturbed copies per forward (default: the config's batch)"},
               {"seed", "N", "seed of the random bytes and of a fresh model's weights (default 1)"},
               {"device", "cpu|cuda|cuda-tf32|cuda-fp32", "where to run (default cpu); cuda: bf16 activations and products, fp32 weights"},
               {"threads", "N", "CPU threads (default: all cores)"}}};
  for (const Flag& f : model_key_flags(" (fresh model)")) cmd.flags.push_back(f);
  Args args = Args::parse(cmd, argc, argv);
  if (args.help) return std::fputs(cmd.help_text().c_str(), stdout), 0;
  std::string device = apply_runtime_flags(args);
  // The flags that build a fresh model; a checkpoint brings its own config.
  const std::vector<std::string> model_keys = model_config_keys();
  int seed = args.get_int("seed", 1);
  if (seed < 0) throw Error("--seed must be >= 0");

  RunConfig cfg;
  std::unique_ptr<Model<float>> model;
  if (args.has("ckpt")) {
    std::vector<std::string> fresh_model_flags = {"preset", "config"};
    for (const std::string& key : model_keys) fresh_model_flags.push_back(flag_of(key));
    for (const std::string& flag : fresh_model_flags)
      if (args.has(flag)) throw Error("--" + flag + " builds a fresh model; --ckpt brings its own config");
    LoadedCheckpoint ck = load_checkpoint(args.get("ckpt"), false, device);
    cfg = ck.cfg;
    model = std::move(ck.model);
  } else {
    cfg = config_from_flags(args, model_keys);
    validate(cfg);
    model = make_model_on(device, cfg.model, (uint64_t)seed);
  }

  LeakcheckOptions opt;
  opt.seq = args.get_int("seq", cfg.train.seq);
  opt.sequences = args.get_int("sequences", 4);
  opt.positions = args.get_int("positions", opt.seq <= 256 ? 0 : 128);
  opt.batch = args.get_int("batch", cfg.train.batch);
  opt.seed = (uint64_t)seed;
  if (opt.seq < 2) throw Error("--seq must be >= 2 (a leak needs a byte after the position tested)");
  if (opt.sequences < 1 || opt.batch < 1) throw Error("--sequences and --batch must be >= 1");
  if (args.has("positions") && opt.positions < 1) throw Error("--positions must be >= 1");
  LeakcheckReport r = leakcheck(*model, opt);

  std::printf("{\"verdict\":%s,\"first_leak_position\":%s,\"first_leak_row\":%s,\"leaking_positions\":%d,"
              "\"max_change\":%s,\"positions\":%zu,\"sequences\":%d,\"seq\":%d,\"rows_compared\":%lld,"
              "\"input_dependent\":%s,\"deterministic\":%s,\"seconds\":%s,\"device\":%s,\"model\":%s,\"params\":%lld}\n",
              json_quote(r.verdict()).c_str(), optional_int(r.first_leak_position).c_str(),
              optional_int(r.first_leak_row).c_str(), r.leaking_positions, json_number(r.max_change).c_str(),
              r.positions.size(), r.sequences, r.seq, (long long)r.rows_compared, r.input_dependent ? "true" : "false",
              r.deterministic ? "true" : "false", json_number(std::round(r.seconds * 1000) / 1000).c_str(),
              json_quote(device).c_str(), model_config_json(cfg.model).c_str(), (long long)model->param_count());
  if (r.passed()) return 0;
  std::fprintf(stderr, "bytelm leakcheck: %s\n", r.summary().c_str());
  return 1;
}

}  // namespace bytelm
