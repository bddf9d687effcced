#include <cstdio>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "infer/sample.h"
#include "train/checkpoint.h"

namespace bytelm {

int cmd_generate(int argc, char** argv) {
  Command cmd{"generate", "Sample bytes from a checkpoint, streaming them to stdout as they are made.",
              "--ckpt PATH [--prompt TEXT] [--bytes N] [options]",
              "The prompt is fed through the model's O(1)-state stream, then --bytes bytes are drawn\n"
              "one at a time, on --device. Output is the prompt followed by the sample, as raw bytes.\n"
              "One stream is latency-bound: on a GPU it pays off for large models (the library's\n"
              "make_streams steps many streams at once).",
              {{"ckpt", "PATH", "checkpoint file, or a run directory"},
               {"prompt", "TEXT", "text to continue (default a newline)"},
               {"bytes", "N", "bytes to generate (default 256)"},
               {"temperature", "T", "sampling temperature, 0 = greedy (default 0.8)"},
               {"top-k", "K", "sample from the K likeliest bytes only (default 0 = all)"},
               {"top-p", "P", "sample from the smallest set of bytes with probability >= P (default 0.95)"},
               {"seed", "N", "random seed (default 1)"},
               {"device", "cpu|cuda|cuda-tf32|cuda-fp32", "where the stream runs (default cpu)"},
               {"threads", "N", "CPU threads (default: all cores)"}}};
  Args args = Args::parse(cmd, argc, argv);
  if (args.help) return std::fputs(cmd.help_text().c_str(), stdout), 0;
  std::string device = apply_runtime_flags(args);
  SamplingOptions opt;
  opt.temperature = args.get_double("temperature", 0.8);
  opt.top_k = args.get_int("top-k", 0);
  opt.top_p = args.get_double("top-p", 0.95);
  int seed = args.get_int("seed", 1);
  int n = args.get_int("bytes", 256);
  std::string prompt = args.get("prompt", "\n");
  if (opt.temperature < 0) throw Error("--temperature must be >= 0");
  if (opt.top_k < 0 || opt.top_k > 256) throw Error("--top-k must be in 0..256");
  if (!(opt.top_p > 0 && opt.top_p <= 1)) throw Error("--top-p must be in (0, 1]");
  if (n < 0) throw Error("--bytes must be >= 0");
  if (seed < 0) throw Error("--seed must be >= 0");
  if (prompt.empty()) throw Error("--prompt must not be empty (the model needs a byte to condition on)");
  opt.seed = (uint64_t)seed;
  LoadedCheckpoint ck = load_checkpoint(args.require("ckpt"), false, device);
  auto stream = ck.model->make_stream();
  std::vector<float> logits(256);
  for (unsigned char c : prompt) stream->step(c, logits.data());
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  Rng rng(opt.seed);
  for (int i = 0; i < n; i++) {
    uint8_t b = sample_byte(logits.data(), opt, rng);
    std::fputc(b, stdout);
    if (b == '\n') std::fflush(stdout);
    stream->step(b, logits.data());
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace bytelm
