#include "infer/compress.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/error.h"
#include "infer/range_coder.h"
#include "train/config.h"
#include "train/safetensors.h"

namespace bytelm {

namespace {

const char kMagic[4] = {'B', 'L', 'M', 'Z'};
constexpr uint32_t kMaxBlock = 1u << 30;  // a block's coded size (at most 16 bits a byte + 4) must fit a u32

size_t block_count(uint64_t size, uint32_t block) { return size_t((size + block - 1) / block); }

// Little-endian fields, appended.
struct Writer {
  std::vector<uint8_t> bytes;
  void u32(uint32_t v) { for (int i = 0; i < 4; i++) bytes.push_back(uint8_t(v >> (8 * i))); }
  void u64(uint64_t v) { for (int i = 0; i < 8; i++) bytes.push_back(uint8_t(v >> (8 * i))); }
  void raw(const void* p, size_t n) { bytes.insert(bytes.end(), (const uint8_t*)p, (const uint8_t*)p + n); }
  void str(const std::string& s) {
    size_t n = std::min<size_t>(s.size(), 0xFFFF);
    bytes.push_back(uint8_t(n));
    bytes.push_back(uint8_t(n >> 8));
    raw(s.data(), n);
  }
};

// Little-endian fields, read with bounds checks: running off the end is the error `short_message`.
struct Reader {
  const uint8_t* p;
  size_t n, pos = 0;
  std::string short_message;
  const uint8_t* take(size_t k) {
    if (k > n - pos) throw Error(short_message);
    pos += k;
    return p + pos - k;
  }
  uint64_t uint(int bytes) {
    const uint8_t* b = take(bytes);
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= uint64_t(b[i]) << (8 * i);
    return v;
  }
  std::string str() {
    size_t len = uint(2);
    const uint8_t* b = take(len);
    return std::string((const char*)b, len);
  }
};

void check_device(const Model<float>& model, const std::string& device) {
  bool gpu_device = device.rfind("cuda", 0) == 0;
  if (device != "cpu" && !gpu_device) throw Error("unknown device '" + device + "' (cpu, cuda, cuda-tf32 or cuda-fp32)");
  if (gpu_device != model.on_gpu())
    throw Error("the model runs on the " + std::string(model.on_gpu() ? "GPU" : "CPU") + " but the coding is for device '" +
                device + "': build it with make_model_on(\"" + device + "\", ...)");
}

// f(i) for i in [0, n), on the CPU threads when `parallel` (and not already inside a parallel region: then one
// after the other); an exception in any is rethrown after the loop as an Error, the lowest i's.
template <class F>
void for_each(size_t n, bool parallel, F f) {
  std::vector<std::string> errors(n);
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (size_t i = 0; i < n; i++) {
    try {
      f(i);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  }
  for (const std::string& e : errors)
    if (!e.empty()) throw Error(e);
}

// The computation both directions share, so that the decoder repeats the encoder's to the bit: blocks in rounds of
// `streams`, each round one make_streams(B) stepped until its longest block ends; a block's byte 0 under the uniform
// distribution, byte t+1 under the logits of the step that read byte t; a stream whose block has ended reads 0.
// code(blk, pos, freqs) codes (or decodes) byte `pos` of block `blk` and returns it; end(blk) runs once a block's
// round is over. Each block's coder is its own, so blocks may run on any thread in any order.
// A CPU model runs whole rounds on the threads, each round on one thread: inside the parallel region the layers'
// loops and OpenBLAS run serially, so no product is split across threads and no logit depends on the thread count
// (outside one, OpenBLAS splits a product by thread count and rounds differently). That holds for one round too.
// A GPU model steps one round at a time on its device, and the threads code the round's rows.
template <class Code, class End>
void run_rounds(Model<float>& model, uint64_t size, uint32_t block, int streams, const CodingProgress& progress,
                Code code, End end) {
  size_t blocks = block_count(size, block), rounds = (blocks + streams - 1) / streams;
  const ByteFreqs uniform = uniform_freqs();
  std::atomic<uint64_t> done{0};
  auto report = [&](uint64_t bytes) {
    uint64_t total = done += bytes;
    if (progress) {
#pragma omp critical(bytelm_compress_progress)
      progress(total);
    }
  };
  const bool gpu = model.on_gpu();
  auto run_round = [&](size_t round) {
    size_t first = round * streams;
    int B = (int)std::min<size_t>(streams, blocks - first);
    std::vector<size_t> len(B);
    size_t longest = 0;
    for (int b = 0; b < B; b++) {
      len[b] = (size_t)std::min<uint64_t>(block, size - (first + b) * (uint64_t)block);
      longest = std::max(longest, len[b]);
    }
    auto batch = model.make_streams(B);
    std::vector<uint8_t> column(B);
    std::vector<float> logits((size_t)B * 256);
    for_each(B, gpu, [&](size_t b) { column[b] = code(first + b, 0, uniform); });
    uint64_t reported = 0;
    for (size_t t = 0; t + 1 < longest; t++) {
      batch->step(column.data(), logits.data());
      for_each(B, gpu && B >= 4, [&](size_t b) {
        if (t + 1 >= len[b]) return void(column[b] = 0);
        ByteFreqs f;
        quantise_logits(logits.data() + b * 256, f);
        column[b] = code(first + b, t + 1, f);
      });
      if (t % 256 == 255) {
        uint64_t now = 0;
        for (int b = 0; b < B; b++) now += std::min(len[b], t + 2);
        report(now - reported);
        reported = now;
      }
    }
    uint64_t round_bytes = 0;
    for (int b = 0; b < B; b++) {
      end(first + b);
      round_bytes += len[b];
    }
    report(round_bytes - reported);
  };
  for_each(rounds, !gpu, run_round);
}

}  // namespace

Sha256Digest model_hash(const Model<float>& model) {
  Sha256 h;
  std::string config = model_config_json(model.config());
  h.update(config.data(), config.size() + 1);  // with its terminating zero, which parameters cannot begin
  // tensor by tensor, not the flat buffer with its alignment gaps, so hashes made before the gaps still match
  for (const ParamInfo& p : model.param_info()) h.update(model.params().data() + p.offset, p.size * sizeof(float));
  return h.digest();
}

std::vector<uint8_t> compress_bytes(Model<float>& model, const uint8_t* data, size_t n, const CompressOptions& opt,
                                    const CodingProgress& progress) {
  if (opt.block < 1 || opt.block > kMaxBlock) throw Error("block size must be in 1..2^30 bytes, got " + std::to_string(opt.block));
  if (opt.streams < 1) throw Error("streams must be >= 1, got " + std::to_string(opt.streams));
  check_device(model, opt.device);
  size_t blocks = block_count(n, opt.block);
  int streams = (int)std::min<size_t>(opt.streams, std::max<size_t>(blocks, 1));

  std::vector<RangeEncoder> enc(blocks);
  std::vector<uint32_t> crc(blocks);
  auto code = [&](size_t blk, size_t pos, const ByteFreqs& f) {
    uint8_t byte = data[blk * opt.block + pos];
    enc[blk].encode(f, byte);
    return byte;
  };
  auto end = [&](size_t blk) {
    enc[blk].finish();
    size_t start = blk * opt.block;
    crc[blk] = crc32_ieee(data + start, std::min<size_t>(opt.block, n - start));
  };
  run_rounds(model, n, opt.block, streams, progress, code, end);

  Writer h;
  h.u64(n);
  h.u32(opt.block);
  h.u32((uint32_t)streams);
  h.str(opt.device);
  Sha256Digest id = model_hash(model), content = sha256(data, n);
  h.raw(id.data(), id.size());
  h.str(opt.checkpoint);
  h.raw(content.data(), content.size());
  for (size_t b = 0; b < blocks; b++) {
    h.u32((uint32_t)enc[b].bytes().size());
    h.u32(crc[b]);
  }
  Writer a;
  a.raw(kMagic, 4);
  a.u32(kArchiveVersion);
  a.u32((uint32_t)h.bytes.size());
  a.raw(h.bytes.data(), h.bytes.size());
  a.u32(crc32_ieee(a.bytes.data(), a.bytes.size()));
  for (const RangeEncoder& e : enc) a.raw(e.bytes().data(), e.bytes().size());
  return std::move(a.bytes);
}

ArchiveHeader read_archive_header(const uint8_t* archive, size_t n) {
  Reader r{archive, n, 0, "truncated archive (it ends inside the header)"};
  if (n < 4 || std::memcmp(archive, kMagic, 4) != 0) throw Error("not a bytelm archive (no BLMZ magic at its start)");
  r.take(4);
  ArchiveHeader h;
  h.version = (uint32_t)r.uint(4);
  if (h.version != kArchiveVersion)
    throw Error("archive format version " + std::to_string(h.version) + ", but this build reads version " +
                std::to_string(kArchiveVersion) + " only");
  size_t header_len = r.uint(4);
  r.take(header_len);
  uint32_t stored_crc = (uint32_t)r.uint(4);
  if (crc32_ieee(archive, r.pos - 4) != stored_crc) throw Error("corrupt archive header (CRC-32 mismatch)");
  h.payload_offset = r.pos;

  // Past the CRC a field can be wrong only if this build wrote it wrong: still checked, never trusted blindly.
  Reader f{archive + 12, header_len, 0, "corrupt archive header (its fields overrun it)"};
  h.size = f.uint(8);
  h.block = (uint32_t)f.uint(4);
  h.streams = (uint32_t)f.uint(4);
  h.device = f.str();
  std::memcpy(h.model.data(), f.take(32), 32);
  h.checkpoint = f.str();
  std::memcpy(h.content.data(), f.take(32), 32);
  if (h.block < 1 || h.block > kMaxBlock || h.streams < 1) throw Error("corrupt archive header (block size or streams)");
  size_t blocks = block_count(h.size, h.block);
  if ((header_len - f.pos) / 8 != blocks || (header_len - f.pos) % 8 != 0)
    throw Error("corrupt archive header (its block table does not match its size)");
  uint64_t payload = 0;
  for (size_t b = 0; b < blocks; b++) {
    h.coded_size.push_back((uint32_t)f.uint(4));
    h.crc.push_back((uint32_t)f.uint(4));
    payload += h.coded_size.back();
  }
  if (payload > n - h.payload_offset)
    throw Error("truncated archive: " + std::to_string(n - h.payload_offset) + " bytes of coded data, the header says " +
                std::to_string(payload));
  if (payload < n - h.payload_offset)
    throw Error("corrupt archive: " + std::to_string(n - h.payload_offset - payload) + " bytes after the coded data");
  return h;
}

std::vector<uint8_t> decompress_bytes(Model<float>& model, const uint8_t* archive, size_t n,
                                      const CodingProgress& progress) {
  ArchiveHeader h = read_archive_header(archive, n);
  Sha256Digest id = model_hash(model);
  if (id != h.model)
    throw Error("this archive was compressed with another model (model " + to_hex(h.model.data(), 8) + ", checkpoint '" +
                h.checkpoint + "'); the one given is model " + to_hex(id.data(), 8));
  check_device(model, h.device);

  size_t blocks = h.blocks();
  std::vector<size_t> offset(blocks + 1, h.payload_offset);
  for (size_t b = 0; b < blocks; b++) offset[b + 1] = offset[b] + h.coded_size[b];
  std::vector<uint8_t> out(h.size);
  std::vector<RangeDecoder> dec;
  for (size_t b = 0; b < blocks; b++) dec.emplace_back(archive + offset[b], h.coded_size[b]);
  // The header's CRC held, so a block that fails has corrupt coded data, or met logits other than the encoder's.
  auto failed = [](size_t blk, const std::string& how) {
    return Error("block " + std::to_string(blk) + " " + how + ": the archive's coded data is corrupt, or this build or "
                 "machine computes the model differently from the one that compressed it");
  };
  auto code = [&](size_t blk, size_t pos, const ByteFreqs& f) {
    try {
      return out[blk * h.block + pos] = dec[blk].decode(f);
    } catch (const Error& e) {
      throw failed(blk, std::string("does not decode (") + e.what() + ")");
    }
  };
  auto end = [&](size_t blk) {
    size_t start = blk * h.block, len = std::min<uint64_t>(h.block, h.size - start);
    if (dec[blk].overrun()) throw failed(blk, "needs more coded bytes than it has");
    if (!dec[blk].clean_end()) throw failed(blk, "does not end where its encoder ended");
    if (crc32_ieee(out.data() + start, len) != h.crc[blk]) throw failed(blk, "decodes to bytes that fail its CRC-32");
  };
  run_rounds(model, h.size, h.block, (int)h.streams, progress, code, end);
  if (sha256(out.data(), out.size()) != h.content)
    throw Error("the decompressed bytes fail the archive's SHA-256 of the original (corrupt archive)");
  return out;
}

}  // namespace bytelm
