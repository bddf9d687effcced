#include <cstdio>
#include <filesystem>
#include <cmath>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/json.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/trainer.h"

namespace bytelm {

namespace {


Command train_command() {
  Command c{"train", "Train a model on raw bytes and write checkpoints and a metrics log into --out.",
            "(--preset NAME | --config FILE) --data PATH --out DIR [options]\n       bytelm train --resume DIR [--steps N] [--max-seconds S]",
            "The config starts from --preset (default ssm-2m), then --config's keys, then the flags below.\n"
            "--data is a file or a directory of files, read as raw bytes. Without --val, the last\n"
            "--val-fraction of --data is held out. DIR receives checkpoint.safetensors (written\n"
            "atomically every --eval-every steps and at the end), metrics.jsonl and run.json.\n"
            "Presets: ssm-demo (d128 L4, trains on 2 CPU cores in minutes), ssm-2m, ssm-10m, ssm-100m;\n"
            "mamba-1m, mamba-10m, mamba-100m (Mamba's selective SSM a byte a step);\n"
            "transformer-10m, transformer-30m (a byte GPT), hybrid-10m (long convolutions and attention).\n"
            "--max-seconds S ends the run at whichever comes first, --steps or S seconds of training\n"
            "(counted from the first step, evaluations and checkpoints included): the last step is\n"
            "evaluated and checkpointed, and --resume DIR goes on from it. The learning-rate schedule\n"
            "still spans --steps, so a run cut short by time stops before its cosine decay is done.\n"
            "Prints one JSON line when done: {\"step\", \"val_bpb\", \"bytes_per_s\", \"seconds\", \"out\"}\n"
            "(val_bpb: the last evaluation, of the final step unless stopped by Ctrl-C).",
            {{"preset", "NAME", "start from a named config"},
             {"config", "FILE", "JSON object of config keys (see the key flags below)"},
             {"data", "PATH", "training bytes: a file or a directory"},
             {"val", "PATH", "validation file (default: the tail of --data)"},
             {"out", "DIR", "run directory"},
             {"resume", "DIR", "continue the run in DIR exactly where its checkpoint left off"},
             {"max-seconds", "S", "stop once S seconds of training have passed (0 = no limit); see above"},
             {"device", "cpu|cuda|cuda-tf32|cuda-fp32", "where to train (default cpu); cuda: bf16 activations and products, fp32 weights"},
             {"tune-products", "", "GPU: each matrix product's kernel the fastest of cuBLASLt's candidates, timed on "
                                   "first use (not yet measured on a GPU); without it, the heuristic's: the same "
                                   "kernels, and so the same bits, in every run (a resume included)"},
             {"threads", "N", "CPU threads (default: all cores)"},
             {"quiet", "", "no progress bar"}}};
  for (const auto& [key, help] : config_key_help()) c.flags.push_back(key_flag(key, help));
  return c;
}

}  // namespace

int cmd_train(int argc, char** argv) {
  Command cmd = train_command();
  Args args = Args::parse(cmd, argc, argv);
  if (args.help) {
    std::fputs(cmd.help_text().c_str(), stdout);
    return 0;
  }
  TrainJob job;
  job.device = apply_runtime_flags(args);
  job.progress = !args.has("quiet");
  job.tune_products = args.has("tune-products");
  // a job option like --device, not a config key: it is not stored in the checkpoint, so a resume may pick another
  job.max_seconds = args.get_double("max-seconds", 0);
  if (job.max_seconds < 0) throw Error("--max-seconds must be >= 0 (0 = no limit)");
  if (args.has("resume")) {
    if (args.has("preset") || args.has("config")) throw Error("--resume takes its config from the checkpoint; drop --preset/--config");
    job.out = args.get("resume");
    if (args.has("out") && args.get("out") != job.out) throw Error("--resume DIR writes into DIR; drop --out or make it the same");
    LoadedCheckpoint ck = load_checkpoint((std::filesystem::path(job.out) / "checkpoint.safetensors").string(), false);
    job.cfg = ck.cfg;
    job.resume = true;
    // run.json remembers the data paths so a resume needs no more than --resume DIR
    Json run = json_parse_file((std::filesystem::path(job.out) / "run.json").string());
    job.data = args.get("data", run.find("data") ? run.find("data")->as_string("run.json data") : "");
    job.val = args.get("val", run.find("val") ? run.find("val")->as_string("run.json val") : "");
    for (const auto& [key, help] : config_key_help()) {
      if (!args.has(flag_of(key))) continue;
      RunConfig changed = job.cfg;
      set_config_key(changed, key, args.get(flag_of(key)), "--" + flag_of(key));
      if (key == "steps") job.cfg = changed;  // extending (or shortening) a run is allowed
      else if (model_config_json(changed.model) != model_config_json(job.cfg.model) ||
               train_config_json(changed.train) != train_config_json(job.cfg.train))
        throw Error("--" + flag_of(key) + " differs from the checkpoint's run; only --steps may change on --resume");
    }
    if (job.cfg.train.steps <= ck.step)
      throw Error("the run in " + job.out + " already finished " + std::to_string(ck.step) + " steps; pass --steps N with N > " + std::to_string(ck.step) + " to train further");
  } else {
    job.cfg = config_from_flags(args, config_keys());
    job.data = args.require("data");
    job.val = args.get("val");
    job.out = args.require("out");
  }
  if (job.data.empty()) throw Error("--data is required");
  TrainReport r = train(job);
  if (r.interrupted) {
    std::fprintf(stderr, "interrupted after step %d; checkpoint saved. Continue with: bytelm train --resume %s\n", r.step,
                 job.out.c_str());
    return 130;
  }
  if (r.time_limit)  // a planned end, so exit 0; the summary below carries the val_bpb of this last step
    std::fprintf(stderr, "stopped at the time limit (--max-seconds %g) after step %d of %d; checkpoint saved. Continue with: bytelm train --resume %s\n",
                 job.max_seconds, r.step, job.cfg.train.steps, job.out.c_str());
  std::printf("{\"step\":%d,\"val_bpb\":%s,\"bytes_per_s\":%s,\"seconds\":%s,\"out\":%s}\n", r.step,
              json_number(r.val_bpb).c_str(), json_number(std::round(r.bytes_per_s)).c_str(),
              json_number(std::round(r.seconds * 100) / 100).c_str(), json_quote(job.out).c_str());
  return 0;
}

}  // namespace bytelm
