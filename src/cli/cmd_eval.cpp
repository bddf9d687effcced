// eval and score: the cost of a file's bytes under a checkpoint.
#include <cmath>
#include <cstdio>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/json.h"
#include "core/progress.h"
#include "infer/score.h"
#include "train/checkpoint.h"
#include "train/corpus.h"

namespace bytelm {

namespace {

const std::vector<Flag> kScoringFlags = {
    {"ckpt", "PATH", "checkpoint file, or a run directory"},
    {"seq", "N", "bytes of context per window (default: the checkpoint's training seq)"},
    {"window", "W", "the same as --seq (give one of them)"},
    {"stride", "S", "windows advance by S bytes, each byte scored once (default: the window); S < W: >= W - S bytes of context"},
    {"batch", "N", "windows per forward pass (default 16)"},
    {"device", "cpu|cuda|cuda-tf32|cuda-fp32", "where to run (default cpu); cuda: bf16 activations and products, fp32 weights"},
    {"threads", "N", "CPU threads (default: all cores)"},
    {"quiet", "", "no progress bar"},
};

struct Scored {
  std::vector<float> bits;
  std::string path;
};

Scored score_file(const Args& args, const std::string& input) {
  std::string device = apply_runtime_flags(args);
  LoadedCheckpoint ck = load_checkpoint(args.require("ckpt"), false, device);
  Corpus c = Corpus::open(input);
  std::vector<uint8_t> bytes(c.size());
  c.read(0, bytes.size(), bytes.data());
  if (args.has("seq") && args.has("window")) throw Error("--window is another name for --seq: give one of them");
  int window = args.has("window") ? args.get_int("window", 0) : args.get_int("seq", ck.cfg.train.seq);
  int stride = args.get_int("stride", window), batch = args.get_int("batch", 16);
  if (window < 1 || batch < 1) throw Error("--seq (--window) and --batch must be >= 1");
  if (stride < 1 || stride > window) throw Error("--stride must be in 1..window (" + std::to_string(window) + ")");
  Progress bar("bytes", (int64_t)bytes.size(), !args.has("quiet"));
  auto report = [&](size_t scored) { bar.update((int64_t)scored, ""); };
  std::vector<float> bits = score_bytes(*ck.model, bytes.data(), bytes.size(), window, stride, batch, report);
  bar.finish((int64_t)bytes.size(), "");
  return {std::move(bits), input};
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  Command cmd{"eval", "Bits per byte of a checkpoint on any file (or directory), printed as JSON.",
              "--ckpt PATH --data FILE [options]",
              "Every byte is scored: byte 0 costs 8 bits (no context), later bytes are predicted from\n"
              "the bytes before them within windows of --seq. With --stride S below the window W (sliding-\n"
              "window evaluation) windows overlap and each byte is scored once, with at least W - S bytes\n"
              "of context. Output: {\"bpb\", \"bytes\", \"bits\", ...}.",
              kScoringFlags};
  cmd.flags.insert(cmd.flags.begin() + 1, {"data", "PATH", "the bytes to evaluate"});
  Args args = Args::parse(cmd, argc, argv);
  if (args.help) return std::fputs(cmd.help_text().c_str(), stdout), 0;
  Scored s = score_file(args, args.require("data"));
  double total = 0;
  for (float b : s.bits) total += b;
  std::printf("{\"bpb\":%s,\"bytes\":%zu,\"bits\":%s,\"data\":%s,\"ckpt\":%s}\n",
              json_number(total / s.bits.size()).c_str(), s.bits.size(), json_number(std::round(total)).c_str(),
              json_quote(s.path).c_str(), json_quote(args.get("ckpt")).c_str());
  return 0;
}

int cmd_score(int argc, char** argv) {
  Command cmd{"score", "The bits of every byte of a file under a checkpoint, one number a line.",
              "--ckpt PATH --input FILE [options]",
              "Line i holds -log2 p(byte i | bytes before it). Useful to see where a model is surprised,\n"
              "and to check causality: editing byte j must not change any line before j+1.",
              kScoringFlags};
  cmd.flags.insert(cmd.flags.begin() + 1, {"input", "PATH", "the bytes to score"});
  Args args = Args::parse(cmd, argc, argv);
  if (args.help) return std::fputs(cmd.help_text().c_str(), stdout), 0;
  Scored s = score_file(args, args.require("input"));
  for (float b : s.bits) std::printf("%.6f\n", b);
  return 0;
}

}  // namespace bytelm
