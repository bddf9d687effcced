#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "train/bench_attention.h"

namespace bytelm {

int cmd_bench_attention(int argc, char** argv) {
  Command cmd{"bench-attention", "Time the fused causal attention kernel on the GPU; JSON lines.",
              "[--tokens N --heads H --head-dim D --seqs 1024,2048,4096] [--warmup N --iters N]",
              "For each sequence length T (batch tokens / T rows of it), times the bf16 forward and the\n"
              "forward + backward on packed q, k, v (as a qkv projection gives them) and prints one JSON line\n"
              "each: impl, device, commit, B, T, H, Dh, pass, ms (median, device events), tflops (causal\n"
              "FLOPs: forward 2 B H T^2 Dh, backward 2.5x that). bench/sdpa_ref.py times PyTorch's flash\n"
              "attention at the same shapes and prints the same fields.",
              {{"tokens", "N", "B * T at every length (default 32768)"},
               {"heads", "H", "heads (default 8)"},
               {"head-dim", "D", "head dim (default 64)"},
               {"seqs", "LIST", "sequence lengths, comma-separated (default 1024,2048,4096)"},
               {"warmup", "N", "untimed calls first (default 10)"},
               {"iters", "N", "timed calls (default 50)"}}};
  Args args = Args::parse(cmd, argc, argv);
  if (args.help) return std::fputs(cmd.help_text().c_str(), stdout), 0;
  AttentionBenchOptions o;
  o.tokens = args.get_int("tokens", o.tokens);
  o.heads = args.get_int("heads", o.heads);
  o.head_dim = args.get_int("head-dim", o.head_dim);
  o.warmup = args.get_int("warmup", o.warmup);
  o.iters = args.get_int("iters", o.iters);
  if (args.has("seqs")) {
    o.seqs.clear();
    std::stringstream list(args.get("seqs"));
    for (std::string item; std::getline(list, item, ',');) {
      try {
        size_t used = 0;
        o.seqs.push_back(std::stoi(item, &used));
        if (used != item.size()) throw std::invalid_argument(item);
      } catch (const std::logic_error&) {
        throw Error("--seqs takes comma-separated integers (got '" + args.get("seqs") + "')");
      }
    }
  }
  for (const std::string& line : run_attention_bench(o)) std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace bytelm
