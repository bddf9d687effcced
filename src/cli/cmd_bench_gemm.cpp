#include <cstdio>
#include <sstream>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "train/bench_gemm.h"

namespace bytelm {

namespace {

// "MxNxK,MxNxK,...": each a product C[M,N] = A[M,K] B[N,K]^T.
std::vector<GemmShape> parse_shapes(const std::string& text) {
  std::vector<GemmShape> shapes;
  std::stringstream list(text);
  for (std::string item; std::getline(list, item, ',');) {
    GemmShape s{};
    char x1 = 0, x2 = 0, rest = 0;
    if (std::sscanf(item.c_str(), "%d%c%d%c%d%c", &s.M, &x1, &s.N, &x2, &s.K, &rest) != 5 || x1 != 'x' || x2 != 'x')
      throw Error("--shapes takes comma-separated MxNxK (got '" + item + "')");
    shapes.push_back(s);
  }
  if (shapes.empty()) throw Error("--shapes is empty");
  return shapes;
}

}  // namespace

int cmd_bench_gemm(int argc, char** argv) {
  Command cmd{"bench-gemm",
              "Time bytelm's own sm90 matrix product against cuBLAS on the GPU; JSON lines.",
              "[--shapes MxNxK,...] [--warmup N --iters N]",
              "For each shape, C[M,N] = A[M,K] B[N,K]^T in bf16 with fp32 accumulation (the forward product\n"
              "y = x W^T), through cuBLAS as the models run it and through the sm90 kernel (TMA copies, wgmma)\n"
              "with tiles of 128 and of 256 columns, and with 128 in turn (pingpong). One JSON line each:\n"
              "impl, device, commit, M, N, K, ms (median, device events), tflops, and for the sm90 rows\n"
              "rel_diff against cuBLAS's output.\n"
              "The default shapes are the ssm presets' forward products at seq 2048, then 8192^3. Then, at\n"
              "the three presets' widths, the SwiGLU product with its gate fused (sm90-swiglu-*) and the dm\n"
              "product with the gate's backward fused (sm90-swiglu-bwd-*), each beside cuBLAS's product alone\n"
              "and with each tiling it takes (their staging leaves no room for some 256-column tiles).",
              {{"shapes", "LIST", "products to time, comma-separated MxNxK (default: the ssm presets')"},
               {"warmup", "N", "untimed calls first (default 10)"},
               {"iters", "N", "timed calls (default 50)"}}};
  Args args = Args::parse(cmd, argc, argv);
  if (args.help) return std::fputs(cmd.help_text().c_str(), stdout), 0;
  GemmBenchOptions o;
  o.warmup = args.get_int("warmup", o.warmup);
  o.iters = args.get_int("iters", o.iters);
  if (args.has("shapes")) o.shapes = parse_shapes(args.get("shapes"));
  for (const std::string& line : run_gemm_bench(o)) std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace bytelm
