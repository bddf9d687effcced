#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "file_testing.h"
#include "train/corpus.h"

using namespace bytelm;
using bytelm::testing::TempDir;
using bytelm::testing::error_message;
namespace fs = std::filesystem;

namespace {

void spit(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

std::string read_string(const Corpus& corpus, uint64_t offset, size_t n) {
  std::string out(n, '\0');
  corpus.read(offset, n, reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

// A single file whose byte i is i % 256: every value, and each byte identifies its offset locally.
std::string counting_bytes(size_t n) {
  std::string bytes(n, '\0');
  for (size_t i = 0; i < n; i++) bytes[i] = static_cast<char>(i % 256);
  return bytes;
}

}  // namespace

TEST(Corpus, FileHoldsEveryByteValue) {
  TempDir dir;
  std::string path = dir.path + "/data.bin";
  std::string bytes = counting_bytes(1000);
  spit(path, bytes);
  Corpus corpus = Corpus::open(path);
  EXPECT_EQ(corpus.size(), 1000u);
  EXPECT_EQ(corpus.path(), path);
  EXPECT_EQ(read_string(corpus, 0, 1000), bytes);
  EXPECT_EQ(read_string(corpus, 998, 2), bytes.substr(998));
  EXPECT_EQ(read_string(corpus, 1000, 0), "");
  EXPECT_THROW(read_string(corpus, 999, 2), Error);
  EXPECT_THROW(read_string(corpus, UINT64_MAX, 2), Error);

  Corpus moved = std::move(corpus);
  EXPECT_EQ(read_string(moved, 250, 10), bytes.substr(250, 10));
}

TEST(Corpus, DirectoryConcatenatesFilesSortedByPath) {
  TempDir dir;
  fs::create_directories(dir.path + "/sub/deeper");
  spit(dir.path + "/b.txt", "BBB");
  spit(dir.path + "/a.txt", "AA");
  spit(dir.path + "/e.txt", "");  // skipped
  spit(dir.path + "/sub/deeper/d.bin", std::string("\0\xff", 2));
  spit(dir.path + "/sub/c.txt", "C");
  Corpus corpus = Corpus::open(dir.path);
  // a.txt, b.txt, (e.txt), sub/c.txt, sub/deeper/d.bin
  ASSERT_EQ(corpus.size(), 8u);
  EXPECT_EQ(read_string(corpus, 0, 8), std::string("AABBBC\0\xff", 8));
  EXPECT_EQ(read_string(corpus, 1, 5), "ABBBC");  // crosses two boundaries
  EXPECT_EQ(read_string(corpus, 5, 3), std::string("C\0\xff", 3));
  EXPECT_THROW(read_string(corpus, 7, 2), Error);
}

TEST(Corpus, OpenErrorsNameThePath) {
  TempDir dir;
  std::string missing = dir.path + "/nope";
  EXPECT_EQ(error_message([&] { Corpus::open(missing); }), "corpus " + missing + " does not exist");

  std::string empty_file = dir.path + "/empty.bin";
  spit(empty_file, "");
  EXPECT_EQ(error_message([&] { Corpus::open(empty_file); }), "corpus " + empty_file + " is empty (0 bytes)");

  std::string empty_dir = dir.path + "/empties";
  fs::create_directories(empty_dir + "/sub");
  spit(empty_dir + "/x", "");
  spit(empty_dir + "/sub/y", "");
  EXPECT_EQ(error_message([&] { Corpus::open(empty_dir); }), "corpus " + empty_dir + " is empty (0 bytes)");
}

TEST(Corpus, SplitTailSizes) {
  TempDir dir;
  spit(dir.path + "/d", counting_bytes(1000));
  Corpus corpus = Corpus::open(dir.path + "/d");
  auto [train, val] = split_tail(corpus, 0.1);
  EXPECT_EQ(train.begin, 0u);
  EXPECT_EQ(train.end, 900u);
  EXPECT_EQ(val.begin, 900u);
  EXPECT_EQ(val.end, 1000u);
  EXPECT_EQ(val.corpus, &corpus);
  EXPECT_EQ(split_tail(corpus, 0.0015).second.size(), 2u);  // rounds 1.5 up
  EXPECT_EQ(split_tail(corpus, 1e-9).second.size(), 1u);    // never empty
  EXPECT_THROW(split_tail(corpus, 0.9996), Error);           // train would be empty
  EXPECT_THROW(split_tail(corpus, 0.0), Error);
  EXPECT_THROW(split_tail(corpus, 1.0), Error);

  spit(dir.path + "/one", "x");
  Corpus tiny = Corpus::open(dir.path + "/one");
  EXPECT_NE(error_message([&] { split_tail(tiny, 0.5); }).find(dir.path + "/one"), std::string::npos);
}

TEST(Corpus, SamplingIsDeterministicAndStaysInRange) {
  TempDir dir;
  spit(dir.path + "/d", counting_bytes(5000));
  Corpus corpus = Corpus::open(dir.path + "/d");
  // Bytes 300..499 hold the values 44..243, so a window's first byte tells where it started.
  CorpusRange range{&corpus, 300, 500};
  const int batch = 8, window = 16;
  auto sample = [&](uint64_t seed, uint64_t step) {
    std::vector<uint8_t> out(batch * window);
    sample_windows(range, seed, step, batch, window, out.data());
    return out;
  };
  EXPECT_EQ(sample(7, 3), sample(7, 3));
  EXPECT_NE(sample(7, 3), sample(7, 4));
  EXPECT_NE(sample(7, 3), sample(8, 3));

  int lowest = 256, highest = -1;
  for (uint64_t step = 0; step < 1000; step++) {
    std::vector<uint8_t> out = sample(1, step);
    for (int row = 0; row < batch; row++) {
      const uint8_t* w = out.data() + row * window;
      ASSERT_GE(w[0], 44);
      ASSERT_LE(w[window - 1], 243);
      for (int i = 1; i < window; i++) ASSERT_EQ(w[i], w[0] + i);
      lowest = std::min<int>(lowest, w[0]);
      highest = std::max<int>(highest, w[0]);
    }
  }
  EXPECT_EQ(lowest, 44);                 // the first start is reachable
  EXPECT_EQ(highest, 243 - window + 1);  // and so is the last

  CorpusRange exact{&corpus, 300, 316};
  std::vector<uint8_t> out(2 * window);
  sample_windows(exact, 5, 5, 2, window, out.data());
  EXPECT_EQ(out[0], 44);
  EXPECT_EQ(out[window], 44);

  CorpusRange short_range{&corpus, 300, 315};
  EXPECT_NE(error_message([&] { sample_windows(short_range, 5, 5, 1, window, out.data()); }).find("shorter than one window"),
            std::string::npos);
}
