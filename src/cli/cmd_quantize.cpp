// quantize: a checkpoint's weight matrices at 8 or 4 bits, and what that costs in bits per byte.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/json.h"
#include "core/progress.h"
#include "infer/calibrate.h"
#include "infer/score.h"
#include "layers/quantize.h"
#include "train/checkpoint.h"
#include "train/corpus.h"

namespace bytelm {

namespace fs = std::filesystem;

namespace {

// The first `cap` bytes of `path` (all of them where cap is 0); Error for fewer than 2.
std::vector<uint8_t> read_bytes(const std::string& path, int64_t cap, const std::string& flag) {
  Corpus c = Corpus::open(path);
  std::vector<uint8_t> bytes(cap > 0 ? std::min<uint64_t>(c.size(), (uint64_t)cap) : c.size());
  if (bytes.size() < 2) throw Error(flag + " needs at least 2 bytes");
  c.read(0, bytes.size(), bytes.data());
  return bytes;
}

// --out: a directory (one that exists, or a path ending in '/') takes checkpoint.safetensors; anything else is
// the file itself. Never the checkpoint being read, and an existing file only with --force.
std::string output_path(const std::string& out, const std::string& source, bool force) {
  std::string path = out;
  if (fs::is_directory(out) || out.back() == '/') {
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec) throw Error("cannot create directory " + out + ": " + ec.message());
    path = (fs::path(out) / "checkpoint.safetensors").string();
  }
  std::error_code ec;
  if (fs::exists(path) && fs::equivalent(path, source, ec))
    throw Error(path + " is the checkpoint being quantized; pick another --out");
  if (fs::exists(path) && !force) throw Error(path + " exists (pass --force to overwrite it)");
  return path;
}

// ||a - b|| / ||a|| over the quantized weights (the only parameters that differ).
double relative_weight_error(const Model<float>& a, const Model<float>& b) {
  double diff = 0, norm = 0;
  for (const ParamInfo& p : a.param_info())
    if (is_quantized_weight(p))
      for (size_t i = p.offset; i < p.offset + p.size; i++) {
        double d = (double)a.params()[i] - (double)b.params()[i];
        diff += d * d;
        norm += (double)a.params()[i] * a.params()[i];
      }
  return norm > 0 ? std::sqrt(diff / norm) : 0.0;
}

double bpb_of(Model<float>& model, const std::vector<uint8_t>& bytes, int window, int batch, const std::string& label,
              bool progress) {
  Progress bar(label, (int64_t)bytes.size(), progress);
  auto report = [&](size_t scored) { bar.update((int64_t)scored, ""); };
  double bpb = bits_per_byte(model, bytes.data(), bytes.size(), window, window, batch, report).bpb;
  bar.finish((int64_t)bytes.size(), "");
  return bpb;
}

}  // namespace

int cmd_quantize(int argc, char** argv) {
  Command cmd{"quantize",
              "Store a checkpoint's weight matrices at 8 or 4 bits; report what it costs in bits per byte.",
              "--ckpt PATH --out PATH [--bits 8|4] [--group N] [--calib FILE] [--data FILE]",
              "The weight matrices (the products' weights and the embedding tables) are cut into groups of\n"
              "--group columns, each stored as signed integers with one fp32 scale, chosen for the least squared\n"
              "error; norms, decays and other vectors stay fp32, and the optimizer state is dropped. With --calib,\n"
              "the matrices that products read are quantized by GPTQ instead: each column's rounding error is\n"
              "spread over the columns after it as the calibration text's inputs to the product say, which keeps\n"
              "4 bits much closer to the original (the calibration runs on the CPU). Every command\n"
              "that takes --ckpt loads the result (eval, score, generate, compress, leakcheck). The file is ~3.7x\n"
              "(8 bits) or ~6.5x (4 bits) smaller than the fp32 weights. On the CPU, where the fp32 weights would\n"
              "not stay in cache (16 MB and more: ssm-10m), streams (generate, compress) take their products from\n"
              "the 8-bit codes, ~3x the fp32 checkpoint's bytes/s; the rest runs on the weights dequantized.\n"
              "Training cannot resume from it. With --data, both checkpoints are scored on the file (windows of\n"
              "the training seq) and the JSON line gains bpb and bpb_quantized.",
              {
                  {"ckpt", "PATH", "the checkpoint to quantize (file, or run directory)"},
                  {"out", "PATH", "where to write: a file, or a directory (existing, or ending in '/')"},
                  {"bits", "8|4", "bits a weight (default 8)"},
                  {"group", "N", "columns sharing one scale (default 64)"},
                  {"data", "FILE", "score both checkpoints on this file"},
                  {"eval-bytes", "N", "score only the first N bytes of --data (default: all of it)"},
                  {"calib", "FILE", "quantize by GPTQ, calibrated on this file (text like the model's; not --data)"},
                  {"calib-bytes", "N", "calibrate on the first N bytes of --calib (default 131072)"},
                  {"batch", "N", "windows per forward pass when scoring or calibrating (default 16)"},
                  {"device", "cpu|cuda|cuda-tf32|cuda-fp32", "where to score (default cpu)"},
                  {"threads", "N", "CPU threads (default: all cores)"},
                  {"force", "", "overwrite --out if it exists"},
                  {"quiet", "", "no progress bar"},
              }};
  Args args = Args::parse(cmd, argc, argv);
  if (args.help) return std::fputs(cmd.help_text().c_str(), stdout), 0;
  std::string device = apply_runtime_flags(args);
  int bits = args.get_int("bits", 8), group = args.get_int("group", 64), batch = args.get_int("batch", 16);
  check_quantization(bits, group);
  if (batch < 1) throw Error("--batch must be >= 1");
  std::string source = checkpoint_path(args.require("ckpt"));
  std::string out = args.require("out");
  if (out.empty()) throw Error("--out is empty");

  // Read the files first, so a bad --data or --calib fails before anything is written.
  for (const char* flag : {"eval-bytes", "calib-bytes"})
    if (args.has(flag) && args.get_int(flag, 0) < 2) throw Error(std::string("--") + flag + " must be >= 2");
  if (args.has("eval-bytes") && !args.has("data")) throw Error("--eval-bytes needs --data");
  if (args.has("calib-bytes") && !args.has("calib")) throw Error("--calib-bytes needs --calib");
  std::vector<uint8_t> bytes, calib;
  if (args.has("data")) bytes = read_bytes(args.get("data"), args.get_int("eval-bytes", 0), "--data");
  if (args.has("calib")) calib = read_bytes(args.get("calib"), args.get_int("calib-bytes", 131072), "--calib");

  bool progress = !args.has("quiet");
  LoadedCheckpoint original = load_checkpoint(source, false, device);
  std::string path = output_path(out, source, args.has("force"));
  std::map<size_t, ProductInputs> inputs;
  if (!calib.empty()) {  // on the CPU: a GPU model's products are not recorded
    LoadedCheckpoint on_cpu = device == "cpu" ? LoadedCheckpoint{} : load_checkpoint(source, false, "cpu");
    Model<float>& model = device == "cpu" ? *original.model : *on_cpu.model;
    Progress bar("calibrating", (int64_t)calib.size(), progress);
    auto report = [&](size_t done) { bar.update((int64_t)done, ""); };
    inputs = gather_product_inputs(model, calib.data(), calib.size(), original.cfg.train.seq, batch, report);
    bar.finish((int64_t)calib.size(), "");
  }
  int weight_matrices = 0;
  int64_t matrices = 0, kept = 0;  // parameters: quantized and left fp32
  for (const ParamInfo& p : original.model->param_info()) {
    weight_matrices += is_quantized_weight(p);
    (is_quantized_weight(p) ? matrices : kept) += (int64_t)p.size;
  }
  Progress bar("matrices", weight_matrices, progress);
  save_quantized_checkpoint(path, *original.model, original.cfg, original.step, bits, group,
                            calib.empty() ? nullptr : &inputs, [&](int done, int) { bar.update(done, ""); });
  bar.finish(weight_matrices, "");
  LoadedCheckpoint quantized = load_checkpoint(path, false, device);  // what every command will load

  std::string line = "{\"out\":" + json_quote(path) + ",\"bits\":" + std::to_string(bits) +
                     ",\"group\":" + std::to_string(group) + ",\"method\":\"" + (calib.empty() ? "rtn" : "gptq") +
                     "\"" + ",\"params\":" + std::to_string(original.model->param_count()) +
                     ",\"quantized_params\":" + std::to_string(matrices) + ",\"fp32_params\":" + std::to_string(kept) +
                     ",\"bytes\":" + std::to_string(fs::file_size(path)) +
                     ",\"fp32_weight_bytes\":" + std::to_string(4 * original.model->param_count()) +
                     ",\"weight_rel_error\":" + json_number(relative_weight_error(*original.model, *quantized.model));
  if (!calib.empty())
    line += ",\"calib_bytes\":" + std::to_string(calib.size()) + ",\"calib\":" + json_quote(args.get("calib"));
  if (!bytes.empty()) {
    int window = original.cfg.train.seq;
    double before = bpb_of(*original.model, bytes, window, batch, "fp32", progress);
    double after = bpb_of(*quantized.model, bytes, window, batch, std::to_string(bits) + "-bit", progress);
    line += ",\"bpb\":" + json_number(before) + ",\"bpb_quantized\":" + json_number(after) +
            ",\"eval_bytes\":" + std::to_string(bytes.size()) + ",\"data\":" + json_quote(args.get("data"));
  }
  std::printf("%s}\n", line.c_str());
  return 0;
}

}  // namespace bytelm
