// bytelm: byte-level language models. `bytelm <command> --help` for each command.
#include <cstdio>
#include <cstring>
#include <new>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "core/git_commit.h"

namespace {

struct Entry {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};

const Entry kCommands[] = {
    {"train", bytelm::cmd_train, "train a model on a file or directory of bytes"},
    {"eval", bytelm::cmd_eval, "bits per byte of a checkpoint on a file (JSON)"},
    {"score", bytelm::cmd_score, "the bits of every byte of a file, one number a line"},
    {"generate", bytelm::cmd_generate, "sample bytes from a checkpoint, streaming"},
    {"info", bytelm::cmd_info, "parameters, FLOPs per byte and memory of a model config (JSON)"},
    {"bench", bytelm::cmd_bench, "time training steps on CPU or GPU, one JSON line"},
    {"bench-attention", bytelm::cmd_bench_attention, "time the fused attention kernel on the GPU (JSON lines)"},
    {"bench-gemm", bytelm::cmd_bench_gemm, "time the own sm90 matrix product against cuBLAS (JSON lines)"},
    {"leakcheck", bytelm::cmd_leakcheck, "check that a model never reads the bytes it predicts (JSON)"},
    {"compare", bytelm::cmd_compare, "train several configs for the same time on the same data; a table"},
    {"compress", bytelm::cmd_compress, "compress a file losslessly with a checkpoint (range coding)"},
    {"decompress", bytelm::cmd_decompress, "restore a file that compress made, with the same checkpoint"},
    {"quantize", bytelm::cmd_quantize, "store a checkpoint's weights at 8 or 4 bits; the bpb it costs (JSON)"},
};

void usage(FILE* out) {
  std::fprintf(out,
               "usage: bytelm <command> [options]\n\n"
               "Tokenizer-free language models over raw bytes: train, evaluate, score and sample.\n\ncommands:\n");
  for (const Entry& e : kCommands) std::fprintf(out, "  %-16s %s\n", e.name, e.summary);
  std::fprintf(out,
               "\nRun 'bytelm <command> --help' for its options. A first run:\n"
               "  bytelm train --preset ssm-demo --data data/tinyshakespeare.txt --out runs/demo\n"
               "  bytelm generate --ckpt runs/demo --prompt 'ROMEO:' --bytes 300\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {  // the commit this binary was built from (scripts record it)
    std::printf("bytelm %s\n", bytelm_git_commit);
    return 0;
  }
  for (const Entry& e : kCommands) {
    if (std::strcmp(argv[1], e.name) != 0) continue;
    try {
      return e.run(argc - 2, argv + 2);
    } catch (const bytelm::Error& err) {
      std::fprintf(stderr, "bytelm %s: error: %s\n", e.name, err.what());
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "bytelm %s: error: out of memory (try a smaller --batch, --seq or model)\n", e.name);
    } catch (const std::exception& err) {
      std::fprintf(stderr, "bytelm %s: error: %s\n", e.name, err.what());
    }
    return 1;
  }
  std::fprintf(stderr, "bytelm: error: unknown command '%s' (see bytelm --help)\n", argv[1]);
  return 2;
}
