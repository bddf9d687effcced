// The training loop: batches from a corpus, forward/backward, AdamW, periodic
// validation, a JSONL metrics log, atomic checkpoints and exact resume.
#pragma once
#include <string>
#include <vector>

#include "train/config.h"

namespace bytelm {

struct TrainJob {
  RunConfig cfg;
  std::string data;          // file or directory
  std::string val;           // optional: validation file; else the tail of `data`
  std::string out;           // run directory: checkpoint.safetensors, metrics.jsonl, run.json (data paths)
  bool resume = false;       // continue from out/checkpoint.safetensors (cfg must come from it)
  int stop_after = -1;       // stop dead after this step, as a crash would: no final checkpoint (for tests)
  double max_seconds = 0;    // wall-clock limit from this call's first step (0 = none): then evaluate, checkpoint, stop
  bool progress = true;      // progress bar on stderr
  std::string device = "cpu";  // or "cuda" / "cuda-fp32" (see make_model_on)
  bool tune_products = false;  // GPU: TrainStep's tune_products (off: the same kernels, and bits, in every run)
};

struct TrainReport {
  std::vector<float> losses;  // training loss (nats) of every step run in this call: the bytes' cross-entropy, without
                              // an auxiliary loss the objective adds (Model::last_extra_loss)
  double val_bpb = 0;         // at the last evaluation
  int step = 0;               // steps completed in total
  double bytes_per_s = 0;     // training throughput of this call
  double seconds = 0;         // wall-clock time of this call's steps, periodic evaluations and checkpoints included
  bool interrupted = false;   // stopped by SIGINT/SIGTERM, after checkpointing the last step
  bool time_limit = false;    // stopped by max_seconds before `steps`, after evaluating and checkpointing the last step
};

// Validates everything (data readable and long enough, config sane) before
// creating or writing anything in `out`. SIGINT/SIGTERM end the run after the
// current step with a checkpoint, so `--resume` continues from there; so does
// reaching max_seconds, which also evaluates so that val_bpb is that of the last step.
TrainReport train(const TrainJob& job);

}  // namespace bytelm
