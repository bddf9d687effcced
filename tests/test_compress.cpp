// bytelm compress / decompress: SHA-256 against FIPS 180-4, the range coder and its quantiser, round trips for
// every model family, the archive's size against the model's own score, corrupt archives and the wrong model
// refused in words, and the command line (stdin/stdout, --force).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cli_fixture.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "infer/compress.h"
#include "infer/range_coder.h"
#include "infer/sample.h"
#include "infer/score.h"
#include "models/model.h"
#include "train/safetensors.h"
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef BYTELM_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace bytelm {
namespace {

std::string hex_of(const std::string& s) {
  Sha256Digest d = sha256(s.data(), s.size());
  return to_hex(d.data(), d.size());
}

TEST(Sha256, FipsVectors) {
  EXPECT_EQ(hex_of(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex_of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hex_of("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopq"
                   "rstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(hex_of(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PiecesEqualWhole) {
  std::string s(1000, 0);
  Rng rng(3);
  for (auto& c : s) c = char(rng.next_u64());
  // pieces that straddle, fill and skip whole 64-byte blocks, and the padding's 55/56-byte edge
  for (size_t piece : {1, 7, 55, 56, 63, 64, 65, 200}) {
    Sha256 h;
    for (size_t i = 0; i < s.size(); i += piece) h.update(s.data() + i, std::min(piece, s.size() - i));
    EXPECT_EQ(h.digest(), sha256(s.data(), s.size())) << piece;
  }
  for (size_t n : {55, 56, 57, 63, 64, 119, 120}) EXPECT_NE(hex_of(s.substr(0, n)), hex_of(s.substr(0, n + 1)));
}

// Frequencies of every kind the quantiser can give: near-uniform, one byte nearly certain, a few likely.
ByteFreqs random_freqs(Rng& rng, int kind) {
  float logits[256];
  for (int s = 0; s < 256; s++) logits[s] = float(rng.normal() * (kind == 0 ? 0.1 : 3.0));
  if (kind == 1) logits[rng.next_u64() % 256] = 60;
  ByteFreqs f;
  quantise_logits(logits, f);
  return f;
}

TEST(RangeCoder, RoundTripCostsTheIdealLength) {
  Rng rng(11);
  for (int trial = 0; trial < 6; trial++) {
    int n = trial == 0 ? 1 : 1500 * trial;
    std::vector<ByteFreqs> freqs(n);
    std::vector<uint8_t> sym(n);
    double ideal_bits = 0;
    RangeEncoder enc;
    for (int i = 0; i < n; i++) {
      freqs[i] = random_freqs(rng, i % 3);
      // draw the symbol from the frequencies themselves, so likely and unlikely bytes both occur
      uint32_t u = uint32_t(rng.next_u64() % kFreqTotal);
      sym[i] = uint8_t(std::upper_bound(freqs[i].cum, freqs[i].cum + 257, u) - freqs[i].cum - 1);
      if (i % 97 == 0) sym[i] = uint8_t(rng.next_u64());  // and some of frequency 1
      ideal_bits += -std::log2(double(freqs[i].freq[sym[i]]) / kFreqTotal);
      enc.encode(freqs[i], sym[i]);
    }
    enc.finish();
    const std::vector<uint8_t>& coded = enc.bytes();
    // within 0.5% of the ideal code length, plus the 4 bytes of the final flush
    EXPECT_LE(coded.size() * 8.0, ideal_bits * 1.005 + 40) << n;
    EXPECT_GE(coded.size() * 8.0, ideal_bits) << n;
    RangeDecoder dec(coded.data(), coded.size());
    for (int i = 0; i < n; i++) ASSERT_EQ(dec.decode(freqs[i]), sym[i]) << i;
    EXPECT_TRUE(dec.clean_end());
    EXPECT_FALSE(dec.overrun());
    // any change to the final bytes, which the decoded symbols may not reveal, spoils the clean end
    for (size_t back = 1; back <= std::min<size_t>(4, coded.size()); back++) {
      std::vector<uint8_t> changed = coded;
      changed[coded.size() - back] ^= 0x80;
      bool same = true;
      try {
        RangeDecoder d2(changed.data(), changed.size());
        for (int i = 0; i < n; i++) same = same && d2.decode(freqs[i]) == sym[i];
        same = same && d2.clean_end();
      } catch (const Error&) {
        same = false;
      }
      EXPECT_FALSE(same) << n << " " << back;
    }
  }
}

TEST(RangeCoder, CarriesThroughRunsOfFF) {
  // Always coding the top of the range drives low towards 0xFF...: the carry path must hold.
  ByteFreqs f = uniform_freqs();
  std::vector<uint8_t> sym(5000);
  Rng rng(5);
  for (size_t i = 0; i < sym.size(); i++) sym[i] = i % 50 == 49 ? uint8_t(rng.next_u64()) : 255;
  RangeEncoder enc;
  for (uint8_t s : sym) enc.encode(f, s);
  enc.finish();
  EXPECT_EQ(enc.bytes().size(), sym.size() + 4);
  RangeDecoder dec(enc.bytes().data(), enc.bytes().size());
  for (uint8_t s : sym) ASSERT_EQ(dec.decode(f), s);
  EXPECT_TRUE(dec.clean_end());
}

TEST(RangeCoder, QuantiserKeepsEveryByteCodable) {
  float logits[256];
  ByteFreqs f;
  for (int kind = 0; kind < 4; kind++) {
    for (int s = 0; s < 256; s++) logits[s] = kind == 0 ? 0.f : kind == 1 ? -1e30f : float(s % 7);
    if (kind == 1) logits[200] = 1e30f;  // finite, and everything but byte 200 underflows to zero
    if (kind == 3) logits[17] = 88.f;
    quantise_logits(logits, f);
    uint32_t total = 0;
    for (int s = 0; s < 256; s++) {
      EXPECT_GE(f.freq[s], 1u) << kind << " " << s;
      total += f.freq[s];
      EXPECT_EQ(f.cum[s + 1], f.cum[s] + f.freq[s]);
    }
    EXPECT_EQ(total, kFreqTotal);
    if (kind == 0) {
      EXPECT_EQ(f.freq[0], kFreqTotal / 256);
    }
    if (kind == 1) {
      EXPECT_EQ(f.freq[200], kFreqTotal - 255);
    }
  }
  logits[3] = NAN;
  EXPECT_THROW(quantise_logits(logits, f), Error);
  logits[3] = INFINITY;
  EXPECT_THROW(quantise_logits(logits, f), Error);
}

// The model families, small: ssm with each patching, mamba.
// Every family; the attention ones with a context shorter than a block, so their streams slide as they code.
std::vector<ModelConfig> families() {
  ModelConfig transformer{"transformer", 16, 2, 1, "mean"}, hybrid{"hybrid", 16, 2, 1, "mean"};
  transformer.head_dim = hybrid.head_dim = 8;
  transformer.context = hybrid.context = 40;
  transformer.bigram_buckets = hybrid.bigram_buckets = 64;
  hybrid.hybrid_layers = "sa";
  hybrid.conv_len = 8;
  return {ModelConfig{"ssm", 16, 1, 2, "mean"},    ModelConfig{"ssm", 16, 2, 3, "attn"},
          ModelConfig{"ssm", 16, 1, 1, "none"},    ModelConfig{"ssm", 16, 1, 3, "local"},
          ModelConfig{"ssm", 16, 1, 2, "soft"},    ModelConfig{"ssm", 16, 1, 2, "entropy"},
          ModelConfig{"mamba", 16, 1, 1, "mean"}, transformer, hybrid};
}

// The tensor whose scale sets how sharp a family's predictions are: the head, or the embedding it is tied to.
bool sharpens(const ModelConfig& c, const std::string& name) {
  return name == (c.arch == "ssm" ? "head.weight" : "embed.weight");
}

std::string name_of(const ModelConfig& c) { return c.arch + "/" + c.patching + "/P" + std::to_string(c.patch); }

// A freshly initialised model predicts nearly uniformly; scaling its output weights makes the predictions sharp
// (a few bits a byte), so that the quantiser's choices show in the size.
std::unique_ptr<Model<float>> sharp_model(const ModelConfig& c, uint64_t seed, const std::string& device = "cpu") {
  auto m = make_model_on(device, c, seed);
  for (const ParamInfo& p : m->param_info())
    if (sharpens(c, p.name))
      for (size_t i = 0; i < p.size; i++) m->params()[p.offset + i] *= c.arch == "ssm" ? 40 : 5;
  m->push_params();
  return m;
}

std::vector<uint8_t> text_bytes(size_t n) {
  const std::string line = "It was the best of times, it was the worst of times; the age of wisdom, the age of foolishness.\n";
  std::vector<uint8_t> t;
  while (t.size() < n) t.insert(t.end(), line.begin(), line.end());
  t.resize(n);
  return t;
}

std::vector<std::pair<std::string, std::vector<uint8_t>>> inputs() {
  Rng rng(7);
  std::vector<uint8_t> random(700), binary;
  for (auto& b : random) b = uint8_t(rng.next_u64());
  for (int v = 0; v < 256; v++) binary.push_back(uint8_t(v));
  binary.insert(binary.end(), 300, 0x00);
  binary.insert(binary.end(), 300, 0xFF);
  for (int v = 255; v >= 0; v--) binary.push_back(uint8_t(v));
  return {{"empty", {}}, {"one byte", {0x41}}, {"random", random}, {"binary", binary}, {"text", text_bytes(900)}};
}

TEST(Compress, RoundTripsEveryFamily) {
  for (const ModelConfig& c : families()) {
    auto m = sharp_model(c, 3);
    for (const auto& [what, data] : inputs()) {
      CompressOptions opt;
      opt.block = 97;  // several rounds of 3 streams, the last round short and its last block shorter still
      opt.streams = 3;
      std::vector<uint8_t> a = compress_bytes(*m, data.data(), data.size(), opt);
      EXPECT_EQ(decompress_bytes(*m, a.data(), a.size()), data) << name_of(c) << " " << what;
      ArchiveHeader h = read_archive_header(a.data(), a.size());
      EXPECT_EQ(h.size, data.size());
      EXPECT_EQ(h.blocks(), (data.size() + 96) / 97);
    }
  }
}

// What the model's score says the bytes cost, block by block: each block scored as one window (byte 0 at 8 bits).
double scored_bits(Model<float>& m, const std::vector<uint8_t>& data, size_t block) {
  double bits = 0;
  for (size_t s = 0; s < data.size(); s += block) {
    size_t len = std::min(block, data.size() - s);
    for (float b : score_bytes(m, data.data() + s, len, (int)len, (int)len, 1)) bits += b;
  }
  return bits;
}

// n bytes drawn from the model itself (temperature 1), a fresh stream every `block` bytes as the coder reads
// them: under the model they cost its own entropy, a few bits a byte for a sharp model, with now and then an
// unlikely byte, so the quantiser's floor and rounding both show.
std::vector<uint8_t> sampled_bytes(Model<float>& m, size_t n, size_t block, uint64_t seed) {
  std::vector<float> logits(256);
  std::vector<uint8_t> out;
  Rng rng(seed);
  while (out.size() < n) {
    auto stream = m.make_stream();
    uint8_t b = uint8_t(rng.next_u64());
    out.push_back(b);
    for (size_t i = 1; i < block && out.size() < n; i++) {
      stream->step(b, logits.data());
      out.push_back(b = sample_byte(logits.data(), SamplingOptions(), rng));
    }
  }
  return out;
}

TEST(Compress, SizeIsTheModelsScore) {
  for (ModelConfig c : families()) {
    CompressOptions opt;
    opt.block = 1000;
    // A stream that slides past its context predicts as sliding-window attention does, not as one window of a
    // block scores; with the context covering a block the two are the same model.
    c.context = std::max(c.context, (int)opt.block);
    auto m = sharp_model(c, 5);
    std::vector<uint8_t> text = sampled_bytes(*m, 4000, opt.block, 1);
    opt.streams = 4;
    std::vector<uint8_t> a = compress_bytes(*m, text.data(), text.size(), opt);
    ArchiveHeader h = read_archive_header(a.data(), a.size());
    double coded_bits = 8.0 * (a.size() - h.payload_offset), model_bits = scored_bits(*m, text, opt.block);
    // sharp enough that the quantiser's floor and rounding matter, far from 8 bits a byte
    EXPECT_LT(model_bits / text.size(), 5.0) << name_of(c);
    // within 1% of the score once each block's flush (4 bytes, the final low) is set aside
    EXPECT_NEAR(coded_bits - 32.0 * h.blocks(), model_bits, 0.01 * model_bits)
        << name_of(c) << ": " << model_bits / text.size() << " bits/byte scored, " << coded_bits / text.size() << " coded";
    // the header: 12 + 4 bytes of framing, ~90 of fields, 8 a block
    EXPECT_LE(h.payload_offset, 120 + 8 * h.blocks());
  }
}

// The archive with the u32 header field at `offset` set to v, and its header CRC mended to match.
std::vector<uint8_t> with_field(std::vector<uint8_t> a, size_t offset, uint32_t v) {
  size_t crc_at = read_archive_header(a.data(), a.size()).payload_offset - 4;
  std::memcpy(a.data() + offset, &v, 4);
  uint32_t crc = crc32_ieee(a.data(), crc_at);
  std::memcpy(a.data() + crc_at, &crc, 4);
  return a;
}
// Where the streams field sits: after magic, version and header length (12 bytes), u64 size and u32 block.
constexpr size_t kStreamsOffset = 24;

// Decoding under a batch other than the encoder's gives the original back or an Error that names the possible
// cause: never wrong bytes. (Here, with OpenBLAS, it is the Error.)
void expect_exact_or_mismatch_error(Model<float>& m, const std::vector<uint8_t>& a, const std::vector<uint8_t>& original) {
  try {
    EXPECT_EQ(decompress_bytes(m, a.data(), a.size()), original);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("computes the model differently"), std::string::npos) << e.what();
  }
}

TEST(Compress, BatchIsPartOfTheFormat) {
  // A batched layer may round a row differently depending on the batch around it (OpenBLAS does, at d >= 64), so
  // the archive records the batch and the decoder uses it, not a choice of its own.
  auto m = sharp_model(ModelConfig{"ssm", 64, 1, 2, "mean"}, 9);
  std::vector<uint8_t> text = text_bytes(1500);
  for (int streams : {1, 2, 5, 16}) {
    CompressOptions opt;
    opt.block = 300;
    opt.streams = streams;
    std::vector<uint8_t> a = compress_bytes(*m, text.data(), text.size(), opt);
    ArchiveHeader h = read_archive_header(a.data(), a.size());
    EXPECT_EQ(h.streams, (uint32_t)std::min(streams, 5));  // never more streams than blocks
    EXPECT_EQ(h.block, 300u);
    EXPECT_EQ(decompress_bytes(*m, a.data(), a.size()), text) << streams;
    std::vector<uint8_t> b = with_field(a, kStreamsOffset, h.streams == 1 ? 4 : 1);
    ASSERT_EQ(read_archive_header(b.data(), b.size()).streams, h.streams == 1 ? 4u : 1u);
    expect_exact_or_mismatch_error(*m, b, text);
  }
}

TEST(Compress, ThreadCountDoesNotChangeTheCode) {
#ifndef _OPENMP
  GTEST_SKIP() << "built without OpenMP";
#else
  // OpenBLAS splits a product differently for another thread count (at d = 256 and 8 rows the logits differ in
  // their last bits), so each round of streams runs on one thread. One round and several, the archive is the same
  // bytes whatever the thread count, and decodes under any other.
  auto m = sharp_model(ModelConfig{"ssm", 256, 1, 2, "mean"}, 2);
  std::vector<uint8_t> text = text_bytes(800);
  int before = omp_get_max_threads();
  for (uint32_t block : {100, 50}) {
    CompressOptions opt;
    opt.block = block;
    opt.streams = 8;
    omp_set_num_threads(1);
    std::vector<uint8_t> a = compress_bytes(*m, text.data(), text.size(), opt);
    omp_set_num_threads(3);
    EXPECT_EQ(compress_bytes(*m, text.data(), text.size(), opt), a) << block;
    omp_set_num_threads(2);
    EXPECT_EQ(decompress_bytes(*m, a.data(), a.size()), text) << block;
  }
  omp_set_num_threads(before);
#endif
}

// The Error's message, or "" if none.
std::string error_of(Model<float>& m, const std::vector<uint8_t>& a) {
  try {
    decompress_bytes(m, a.data(), a.size());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Compress, CorruptArchivesAreRefusedInWords) {
  auto m = sharp_model(ModelConfig{"ssm", 16, 1, 2, "mean"}, 4);
  std::vector<uint8_t> text = text_bytes(2000);
  CompressOptions opt;
  opt.block = 500;
  std::vector<uint8_t> a = compress_bytes(*m, text.data(), text.size(), opt);
  size_t payload = read_archive_header(a.data(), a.size()).payload_offset;
  auto expect_error = [&](std::vector<uint8_t> b, const std::string& words, const std::string& what) {
    std::string e = error_of(*m, b);
    EXPECT_NE(e.find(words), std::string::npos) << what << ": '" << e << "'";
  };
  // a flipped byte anywhere in the header (fields, block table, its own CRC) fails the header's CRC
  for (size_t at : {size_t(16), size_t(40), payload - 12, payload - 2}) {
    std::vector<uint8_t> b = a;
    b[at] ^= 0x10;
    expect_error(b, "corrupt archive header", "header byte " + std::to_string(at));
  }
  {
    std::vector<uint8_t> b = a;
    b[0] = 'X';
    expect_error(b, "not a bytelm archive", "magic");
    b = a;
    b[4] = 2;
    expect_error(b, "version 2", "version");
  }
  // payload bytes flipped one at a time (every 29th, and the last 6 of each block, which decoding alone cannot
  // check): never a silent wrong result, always the block named
  std::vector<size_t> at;
  for (size_t i = payload; i < a.size(); i += 29) at.push_back(i);
  size_t block_end = payload;
  for (uint32_t len : read_archive_header(a.data(), a.size()).coded_size)
    for (size_t k = 1; k <= 6; k++) at.push_back((block_end += k == 1 ? len : 0) - k);
  for (size_t i : at) {
    std::vector<uint8_t> b = a;
    b[i] ^= 0x01;
    expect_error(b, "block ", "payload byte " + std::to_string(i));
  }
  expect_error(std::vector<uint8_t>(a.begin(), a.end() - 1), "truncated archive", "last byte cut");
  expect_error(std::vector<uint8_t>(a.begin(), a.begin() + payload - 5), "ends inside the header", "header cut");
  expect_error(std::vector<uint8_t>(a.begin(), a.begin() + 3), "not a bytelm archive", "3 bytes");
  std::vector<uint8_t> longer = a;
  longer.push_back(0);
  expect_error(longer, "after the coded data", "a byte appended");
}

TEST(Compress, AnotherModelIsRefused) {
  ModelConfig c{"ssm", 16, 1, 2, "mean"};
  auto m = sharp_model(c, 4), other_seed = sharp_model(c, 5);
  ModelConfig wider = c;
  wider.patch = 4;  // the same parameter shapes, another computation: the config is part of the hash
  auto other_config = make_model<float>(wider, 4);
  std::vector<uint8_t> text = text_bytes(300);
  std::vector<uint8_t> a = compress_bytes(*m, text.data(), text.size(), CompressOptions());
  EXPECT_NE(error_of(*other_seed, a).find("another model"), std::string::npos);
  EXPECT_NE(model_hash(*m), model_hash(*sharp_model(wider, 4)));
  EXPECT_NE(error_of(*other_config, a).find("another model"), std::string::npos);
  EXPECT_EQ(model_hash(*m), model_hash(*sharp_model(c, 4)));
}

TEST(Compress, BadOptionsAreRefused) {
  auto m = make_model<float>(ModelConfig{"ssm", 16, 1, 2, "mean"}, 1);
  uint8_t byte = 0;
  CompressOptions opt;
  opt.block = 0;
  EXPECT_THROW(compress_bytes(*m, &byte, 1, opt), Error);
  opt = CompressOptions();
  opt.streams = 0;
  EXPECT_THROW(compress_bytes(*m, &byte, 1, opt), Error);
  opt = CompressOptions();
  opt.device = "cuda";  // a CPU model cannot code for a GPU archive
  EXPECT_THROW(compress_bytes(*m, &byte, 1, opt), Error);
}

bool have_gpu() {
#ifdef BYTELM_WITH_CUDA
  return cuda_available();
#else
  return false;
#endif
}

// On the GPU: make_streams(B) steps the batch in CUDA kernels and cuBLAS, in bf16 (cuda) or fp32 (cuda-fp32).
// The round trip must hold on each, the archive must say which, and a CPU model of the same weights must be
// refused (it would compute other logits). In fp32 the size is the model's score as on the CPU.
TEST(CudaCompress, RoundTripOnEachPrecision) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  ModelConfig c{"ssm", 64, 2, 2, "mean"};
  for (const char* device : {"cuda", "cuda-fp32", "cuda-tf32"}) {
    auto m = sharp_model(c, 5, device);
    CompressOptions opt;
    opt.block = 500;
    opt.streams = 8;
    opt.device = device;
    for (const auto& [what, data] : inputs()) {
      std::vector<uint8_t> a = compress_bytes(*m, data.data(), data.size(), opt);
      EXPECT_EQ(decompress_bytes(*m, a.data(), a.size()), data) << device << " " << what;
      EXPECT_EQ(read_archive_header(a.data(), a.size()).device, device);
    }
    std::vector<uint8_t> sampled = sampled_bytes(*m, 4000, opt.block, 1);
    std::vector<uint8_t> a = compress_bytes(*m, sampled.data(), sampled.size(), opt);
    EXPECT_EQ(decompress_bytes(*m, a.data(), a.size()), sampled) << device;
    if (std::string(device) == "cuda-fp32") {
      ArchiveHeader h = read_archive_header(a.data(), a.size());
      double coded_bits = 8.0 * (a.size() - h.payload_offset), model_bits = scored_bits(*m, sampled, opt.block);
      EXPECT_NEAR(coded_bits - 32.0 * h.blocks(), model_bits, 0.01 * model_bits);
    }
    auto on_cpu = sharp_model(c, 5, "cpu");
    EXPECT_THROW(decompress_bytes(*on_cpu, a.data(), a.size()), Error) << device;
  }
}

using testing::Cli;
using testing::Result;
using testing::slurp;
namespace fs = std::filesystem;

class CompressCli : public Cli {};

TEST_F(CompressCli, RoundTripFilesStdinStdoutAndForce) {
  std::string ck = checkpoint();
  std::string text;
  for (int i = 0; i < 60; i++) text += "the quick brown fox jumps over the lazy dog. ";
  std::string in = file("in.txt", text), z = (dir / "in.blmz").string(), back = (dir / "back.txt").string();

  Result r = run("compress --ckpt " + ck + " --block 700 --streams 2 " + in + " " + z);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("bytes/s"), std::string::npos) << r.err;
  r = run("decompress " + z + " " + back);  // the checkpoint from the archive's hint
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(slurp(back), text);

  // an existing output is refused without --force, and left as it was
  std::string before = slurp(z);
  expect_clean_error(run("compress --ckpt " + ck + " --quiet " + in + " " + z), "--force");
  EXPECT_EQ(slurp(z), before);
  expect_clean_error(run("decompress --quiet " + z + " " + back), "--force");
  EXPECT_EQ(run("decompress --force --quiet --ckpt " + ck + " " + z + " " + back).code, 0);
  EXPECT_EQ(slurp(back), text);

  // - is stdin / stdout
  r = run("compress --ckpt " + ck + " --quiet --block 700 --streams 2 - -", 0, in);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, before);  // the same archive as from the file
  r = run("decompress --quiet - -", 0, z);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, text);

  // empty and one-byte files
  for (std::string content : {std::string(), std::string(1, '\xff')}) {
    std::string f = file("small", content);
    ASSERT_EQ(run("compress --force --quiet --ckpt " + ck + " " + f + " " + z).code, 0);
    ASSERT_EQ(run("decompress --force --quiet " + z + " " + back).code, 0);
    EXPECT_EQ(slurp(back), content);
  }
}

TEST_F(CompressCli, ErrorsAreOneLine) {
  std::string ck = checkpoint();
  std::string in = file("in.txt", "some bytes to compress"), z = (dir / "z").string(), back = (dir / "back").string();
  ASSERT_EQ(run("compress --quiet --ckpt " + ck + " " + in + " " + z).code, 0);
  std::string a = slurp(z);
  a[a.size() - 2] ^= 0x55;
  std::string bad = file("bad", a);
  expect_clean_error(run("decompress --ckpt " + ck + " " + bad + " " + back), "block 0");
  EXPECT_FALSE(fs::exists(back));  // no partial output
  expect_clean_error(run("decompress --ckpt " + ck + " " + file("notz", "hello world") + " " + back), "not a bytelm archive");
  // another checkpoint: a second tiny run on other text
  std::string other = (dir / "other").string();
  ASSERT_EQ(run(tiny_train(file("t2.txt", std::string(3000, 'z')), other, "--seed 9")).code, 0);
  expect_clean_error(run("decompress --ckpt " + other + " " + z + " " + back), "another model");
  expect_clean_error(run("compress --ckpt " + ck + " " + (dir / "missing").string() + " " + back), "missing");
  expect_clean_error(run("compress --ckpt " + ck + " " + in), "needs IN and OUT");
  expect_clean_error(run("compress --ckpt " + ck + " --block 0 " + in + " " + back), "--block");
  for (const char* c : {"compress", "decompress"}) {
    Result r = run(std::string(c) + " --help");
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("Determinism"), std::string::npos);
  }
}

}  // namespace
}  // namespace bytelm
