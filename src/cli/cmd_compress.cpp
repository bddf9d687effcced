// compress and decompress: a file range-coded under a checkpoint's predictions, and back (infer/compress.h).
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "infer/compress.h"
#include "train/checkpoint.h"

namespace bytelm {

namespace {

const char* kDeterminism =
    "Determinism: the decoder must compute the very logits the encoder did, to the bit. It repeats the\n"
    "encoder's computation exactly: block size, the batch of streams stepped together (BLAS rounds a\n"
    "row differently in another batch), device and precision are in the archive, and decompress uses\n"
    "them. On the CPU each batch runs on one thread (batches in parallel), so the thread count does\n"
    "not matter. Every softmax is summed in a fixed order in double, and no step uses atomics.\n"
    "Holds: the same bytelm build on the same kind of machine (CPU model, BLAS library; or GPU model,\n"
    "CUDA and cuBLAS versions). Not promised: another build, BLAS, CPU or GPU, which may round the\n"
    "model's arithmetic differently. That is detected (every block's CRC-32 and the SHA-256 of the\n"
    "whole are checked) and reported as an error, never written out as output.\n";

// The whole of a file, or of stdin for "-".
std::vector<uint8_t> read_all(const std::string& path) {
  FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  if (!f) throw Error("cannot read " + path + ": " + std::strerror(errno));
  if (path != "-" && std::filesystem::is_directory(path)) {
    std::fclose(f);
    throw Error("cannot read " + path + ": it is a directory");
  }
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.insert(bytes.end(), buf, buf + got);
  bool failed = std::ferror(f);
  if (path != "-") std::fclose(f);
  if (failed) throw Error("cannot read " + path + ": read error");
  return bytes;
}

// Refused before any work is done, so a long run does not end in this error.
void check_writable(const std::string& path, bool force) {
  if (path != "-" && std::filesystem::exists(path) && !force)
    throw Error(path + " exists (pass --force to overwrite it)");
}

void write_all(const std::string& path, const std::vector<uint8_t>& bytes, const std::string& what) {
  if (path != "-") return write_file_atomic(path, {{bytes.data(), bytes.size()}}, what);
  if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size() || std::fflush(stdout) != 0)
    throw Error("cannot write " + what + " to stdout: " + std::strerror(errno));
}

struct Paths {
  std::string in, out;
};

Paths in_and_out(const Command& cmd, const Args& args) {
  if (args.positional().size() != 2)
    throw Error(cmd.name + ": needs IN and OUT (see bytelm " + cmd.name + " --help)");
  return {args.positional()[0], args.positional()[1]};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int cmd_compress(int argc, char** argv) {
  Command cmd{"compress", "Compress a file losslessly with a checkpoint: each byte range-coded under the model's prediction.",
              "--ckpt PATH [options] IN OUT",
              std::string("IN and OUT are paths, or - for stdin / stdout. The archive costs what the model's\n"
                          "`eval` says the bytes cost (plus a header of ~100 bytes + 8 a block, and ~4 bytes a\n"
                          "block), and names the model by a SHA-256 of its config and parameters, so only the\n"
                          "same checkpoint decompresses it (bytelm decompress).\n\n"
                          "The input is cut into blocks of --block bytes, coded independently: each block's first\n"
                          "byte costs 8 bits (no context), every later byte is predicted from the block's bytes\n"
                          "before it by the model's O(1)-state stream. --streams blocks are stepped together as\n"
                          "one batch. On the CPU the threads run whole batches side by side, so give them enough\n"
                          "(blocks / streams >= threads); on a GPU one batch runs at a time, and wants hundreds of\n"
                          "streams (e.g. --block 8192 --streams 256 for a 2 MiB file). Larger blocks give the\n"
                          "model more context (a little smaller output), more blocks more parallel work.\n\n") +
                  kDeterminism +
                  "\nProgress on stderr, then one line: sizes, bits per byte, seconds and bytes per second.",
              {{"ckpt", "PATH", "checkpoint file, or a run directory"},
               {"block", "N", "bytes a block (default 65536)"},
               {"streams", "B", "blocks coded together as one batch (default 8 on cpu, 256 on cuda)"},
               {"device", "cpu|cuda|cuda-tf32|cuda-fp32", "where the model runs (default cpu); decompress uses the same"},
               {"threads", "N", "CPU threads (default: all cores)"},
               {"force", "", "overwrite OUT if it exists"},
               {"quiet", "", "no progress bar and no final report"}}};
  Args args = Args::parse(cmd, argc, argv, 2);
  if (args.help) return std::fputs(cmd.help_text().c_str(), stdout), 0;
  Paths p = in_and_out(cmd, args);
  std::string device = apply_runtime_flags(args);
  CompressOptions opt;
  int block = args.get_int("block", 1 << 16);
  opt.streams = args.get_int("streams", device == "cpu" ? 8 : 256);
  if (block < 1 || block > (1 << 30)) throw Error("--block must be in 1..1073741824");
  if (opt.streams < 1) throw Error("--streams must be >= 1");
  opt.block = (uint32_t)block;
  opt.device = device;
  std::string ckpt = args.require("ckpt");
  opt.checkpoint = std::filesystem::absolute(checkpoint_path(ckpt)).lexically_normal().string();
  check_writable(p.out, args.has("force"));
  std::vector<uint8_t> input = read_all(p.in);
  LoadedCheckpoint ck = load_checkpoint(ckpt, false, device);

  bool quiet = args.has("quiet");
  auto t0 = std::chrono::steady_clock::now();
  Progress bar("bytes", (int64_t)input.size(), !quiet);
  std::vector<uint8_t> archive = compress_bytes(*ck.model, input.data(), input.size(), opt,
                                                [&](uint64_t done) { bar.update((int64_t)done, ""); });
  bar.finish((int64_t)input.size(), "");
  double s = seconds_since(t0);
  write_all(p.out, archive, "archive");
  if (!quiet)
    std::fprintf(stderr, "compressed %zu -> %zu bytes (%.4f bits/byte) in %.2f s, %sbytes/s\n", input.size(),
                 archive.size(), input.empty() ? 0.0 : 8.0 * archive.size() / input.size(), s,
                 format_rate(input.size() / std::max(s, 1e-9)).c_str());
  return 0;
}

int cmd_decompress(int argc, char** argv) {
  Command cmd{"decompress", "Restore a file that bytelm compress made, with the same checkpoint.",
              "[--ckpt PATH] [options] IN OUT",
              std::string("IN and OUT are paths, or - for stdin / stdout. Without --ckpt the checkpoint is the\n"
                          "path the archive recorded when it was made. A checkpoint other than the one that\n"
                          "compressed (by a SHA-256 of its config and parameters) is refused. The model runs on\n"
                          "the device and precision, with the batch of streams, that the archive records.\n\n") +
                  kDeterminism,
              {{"ckpt", "PATH", "checkpoint file, or a run directory (default: the one the archive names)"},
               {"threads", "N", "CPU threads (default: all cores)"},
               {"force", "", "overwrite OUT if it exists"},
               {"quiet", "", "no progress bar and no final report"}}};
  Args args = Args::parse(cmd, argc, argv, 2);
  if (args.help) return std::fputs(cmd.help_text().c_str(), stdout), 0;
  Paths p = in_and_out(cmd, args);
  apply_runtime_flags(args);  // --threads (decompress has no --device: the archive's is used)
  check_writable(p.out, args.has("force"));
  std::vector<uint8_t> archive = read_all(p.in);
  ArchiveHeader h = read_archive_header(archive.data(), archive.size());
  std::string ckpt = args.get("ckpt", h.checkpoint);
  if (ckpt.empty()) throw Error("the archive names no checkpoint: pass --ckpt");
  if (!args.has("ckpt") && !std::filesystem::exists(ckpt))
    throw Error("the archive's checkpoint " + ckpt + " does not exist here: pass --ckpt");
  LoadedCheckpoint ck = load_checkpoint(ckpt, false, h.device);

  bool quiet = args.has("quiet");
  auto t0 = std::chrono::steady_clock::now();
  Progress bar("bytes", (int64_t)h.size, !quiet);
  std::vector<uint8_t> out = decompress_bytes(*ck.model, archive.data(), archive.size(),
                                              [&](uint64_t done) { bar.update((int64_t)done, ""); });
  bar.finish((int64_t)out.size(), "");
  double s = seconds_since(t0);
  write_all(p.out, out, "output");
  if (!quiet)
    std::fprintf(stderr, "decompressed %zu -> %zu bytes in %.2f s, %sbytes/s\n", archive.size(), out.size(), s,
                 format_rate(out.size() / std::max(s, 1e-9)).c_str());
  return 0;
}

}  // namespace bytelm
