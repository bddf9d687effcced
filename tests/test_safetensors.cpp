#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include "core/error.h"
#include "file_testing.h"
#include "core/json.h"
#include "train/safetensors.h"

using namespace bytelm;
using bytelm::testing::TempDir;
using bytelm::testing::error_message;
namespace fs = std::filesystem;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// A safetensors file built by hand: 8-byte little-endian length, header, data.
std::string raw_file(const std::string& header, const std::string& data, uint64_t header_length) {
  std::string bytes;
  for (int i = 0; i < 8; i++) bytes += static_cast<char>((header_length >> (8 * i)) & 0xFF);
  return bytes + header + data;
}
std::string raw_file(const std::string& header, const std::string& data) {
  return raw_file(header, data, header.size());
}

}  // namespace

TEST(Crc32, MatchesZlib) {
  EXPECT_EQ(crc32_ieee("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(crc32_ieee("", 0), 0u);
  EXPECT_EQ(crc32_ieee("56789", 5, crc32_ieee("1234", 4)), 0xCBF43926u);  // chaining
}

TEST(Safetensors, RoundTripIsBitExact) {
  TempDir dir;
  std::string path = dir.path + "/ckpt.safetensors";
  std::vector<float> w = {1.5f, -0.0f, 0.0f, std::numeric_limits<float>::denorm_min(),
                          std::numeric_limits<float>::max(), -std::numeric_limits<float>::infinity()};
  float scalar = 3.25f;
  std::vector<TensorRef> refs = {{"z.weight", {2, 3}, w.data()}, {"a.scalar", {}, &scalar}, {"empty", {0, 4}, nullptr}};
  std::map<std::string, std::string> metadata = {{"step", "1200"}, {"config", "{\"n\": \"é\\\"\"}"}};
  safetensors_write(path, refs, metadata);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  Safetensors st = safetensors_read(path);
  ASSERT_EQ(st.tensors.size(), 3u);
  EXPECT_EQ(st.tensors[0].name, "z.weight");  // file order, not sorted
  EXPECT_EQ(st.tensors[1].name, "a.scalar");
  const Tensor& t = st.get("z.weight");
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.numel(), 6);
  ASSERT_EQ(t.data.size(), w.size());
  EXPECT_EQ(std::memcmp(t.data.data(), w.data(), w.size() * sizeof(float)), 0);
  EXPECT_TRUE(std::signbit(t.data[1]));
  EXPECT_EQ(st.get("a.scalar").shape.size(), 0u);
  EXPECT_EQ(st.get("a.scalar").data, std::vector<float>{3.25f});
  EXPECT_EQ(st.get("empty").numel(), 0);
  EXPECT_EQ(st.metadata.at("step"), "1200");
  EXPECT_EQ(st.metadata.at("config"), metadata.at("config"));
  EXPECT_EQ(st.metadata.at("crc32"), std::to_string(crc32_ieee(&scalar, 4, crc32_ieee(w.data(), 24))));
  EXPECT_EQ(st.path, path);
  std::string message = error_message([&] { st.get("nope"); });
  EXPECT_NE(message.find(path), std::string::npos);
  EXPECT_NE(message.find("'nope'"), std::string::npos);
}

// Byte tensors (quantized weights' codes) keep their dtype and bytes, beside F32 ones in the same file.
TEST(Safetensors, ByteTensorsRoundTrip) {
  TempDir dir;
  std::string path = dir.path + "/bytes.safetensors";
  std::vector<uint8_t> codes = {0, 1, 127, 128, 255};
  std::vector<float> scale = {0.5f, 2.f};
  safetensors_write(
      path, {{"q", {5}, codes.data(), "I8"}, {"q.scale", {2, 1}, scale.data()}, {"p", {1, 3}, codes.data(), "U8"}}, {});
  Safetensors st = safetensors_read(path);
  EXPECT_EQ(st.get("q").dtype, "I8");
  EXPECT_EQ(st.get("q").bytes, codes);
  EXPECT_TRUE(st.get("q").data.empty());
  EXPECT_EQ(st.get("q.scale").dtype, "F32");
  EXPECT_EQ(st.get("q.scale").data, scale);
  EXPECT_EQ(st.get("p").dtype, "U8");
  EXPECT_EQ(st.get("p").bytes, std::vector<uint8_t>(codes.begin(), codes.begin() + 3));
  std::string message = error_message([&] { safetensors_write(path, {{"h", {1}, scale.data(), "F16"}}, {}); });
  EXPECT_NE(message.find("dtype F16"), std::string::npos) << message;
}

TEST(Safetensors, HeaderLayoutFollowsSpec) {
  TempDir dir;
  std::string path = dir.path + "/x.safetensors";
  std::vector<float> b = {1, 2}, a = {3};
  safetensors_write(path, {{"b", {2}, b.data()}, {"a", {1}, a.data()}}, {});
  std::string bytes = slurp(path);
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  EXPECT_EQ(header_length % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + header_length + 12);
  std::string header = bytes.substr(8, header_length);
  EXPECT_EQ(header.find_last_not_of(' ') + 1, header.find_last_of('}') + 1);  // padded with spaces only
  Json json = json_parse(header, "header");
  ASSERT_EQ(json.object.size(), 3u);
  EXPECT_EQ(json.object[1].first, "b");
  EXPECT_EQ(json.object[2].first, "a");
  EXPECT_EQ(json.find("a")->find("dtype")->as_string("dtype"), "F32");
  EXPECT_EQ(json.find("a")->find("data_offsets")->array[0].as_int("begin"), 8);
  EXPECT_EQ(json.find("a")->find("data_offsets")->array[1].as_int("end"), 12);
  float last;
  std::memcpy(&last, bytes.data() + bytes.size() - 4, 4);
  EXPECT_EQ(last, 3.0f);
}

TEST(Safetensors, ReadsHandBuiltFileWithoutChecksum) {
  TempDir dir;
  std::string path = dir.path + "/hand.safetensors";
  // 1.0f, -2.0f and 0.5f as little-endian IEEE-754 bytes; "b" is stored before "a" in the data.
  std::string data("\x00\x00\x00\x3f" "\x00\x00\x80\x3f" "\x00\x00\x00\xc0", 12);
  spit(path, raw_file(R"({"a":{"dtype":"F32","shape":[2,1],"data_offsets":[4,12]},"b":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"__metadata__":{"format":"pt"}})", data));
  Safetensors st = safetensors_read(path);
  EXPECT_EQ(st.get("a").data, (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(st.get("a").shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(st.get("b").data, std::vector<float>{0.5f});
  EXPECT_EQ(st.metadata.at("format"), "pt");
  EXPECT_EQ(st.metadata.count("crc32"), 0u);
}

TEST(Safetensors, WriteIsAtomic) {
  TempDir dir;
  std::vector<float> v = {1, 2, 3};
  std::string missing_dir = dir.path + "/no/such/dir/ckpt.safetensors";
  EXPECT_NE(error_message([&] { safetensors_write(missing_dir, {{"v", {3}, v.data()}}, {}); }).find(missing_dir),
            std::string::npos);

  // The final rename fails (target is a non-empty directory): temp file removed, target untouched.
  std::string blocked = dir.path + "/blocked";
  fs::create_directories(blocked + "/inner");
  EXPECT_THROW(safetensors_write(blocked, {{"v", {3}, v.data()}}, {}), Error);
  EXPECT_FALSE(fs::exists(blocked + ".tmp"));
  EXPECT_TRUE(fs::is_directory(blocked + "/inner"));

  // The temp file cannot be created: an existing checkpoint is left as it was.
  std::string path = dir.path + "/ckpt.safetensors";
  safetensors_write(path, {{"v", {3}, v.data()}}, {{"step", "1"}});
  std::string before = slurp(path);
  fs::create_directory(path + ".tmp");
  std::vector<float> other = {9, 9, 9};
  EXPECT_THROW(safetensors_write(path, {{"v", {3}, other.data()}}, {{"step", "2"}}), Error);
  EXPECT_EQ(slurp(path), before);
  fs::remove(path + ".tmp");

  // Overwriting succeeds and leaves no temp file.
  safetensors_write(path, {{"v", {3}, other.data()}}, {{"step", "2"}});
  EXPECT_EQ(safetensors_read(path).get("v").data, other);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()), 2);  // blocked/ and ckpt

  EXPECT_THROW(safetensors_write(path, {{"v", {3}, v.data()}, {"v", {3}, v.data()}}, {}), Error);
}

TEST(Safetensors, EachCorruptionIsAClearError) {
  TempDir dir;
  std::string path = dir.path + "/bad.safetensors";
  auto read_error = [&](const std::string& bytes) {
    spit(path, bytes);
    return error_message([&] { safetensors_read(path); });
  };
  const std::string ok_entry = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string eight(8, '\0');
  struct Case {
    std::string bytes, expected;
  };
  std::vector<Case> cases = {
      {"abcd", "truncated"},
      {raw_file("{}", "", 1ull << 40), "absurd"},
      {raw_file("{}", "", 100), "truncated (header says 100 bytes, file has 10)"},
      {raw_file(R"({"w":{"dtype":"F32",)", eight), "invalid JSON"},
      {raw_file("[1, 2]", eight), "not a JSON object"},
      {raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234"), "truncated"},
      {raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight), "needs 3 floats"},
      {raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight), "invalid data_offsets"},
      {raw_file(R"({"w":{"dtype":"I8","shape":[7],"data_offsets":[0,8]}})", eight), "needs 7 bytes"},
      {raw_file(R"({"w":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})", eight), "only F32, I8 and U8"},
      {raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight), "overlap"},
      {raw_file(R"({"w":{"dtype":"F32","shape":[2]}})", eight), "no \"data_offsets\""},
      {raw_file(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", eight), "expected an integer"},
      {raw_file(R"({"__metadata__":{"crc32":7},)" + ok_entry + "}", eight), "expected a string"},
      {raw_file(R"({"__metadata__":{"crc32":"12345"},)" + ok_entry + "}", eight), "corrupt (crc32 mismatch)"},
      {raw_file(R"({"__metadata__":{"crc32":"x"},)" + ok_entry + "}", eight), "corrupt"},
  };
  for (const Case& c : cases) {
    std::string message = read_error(c.bytes);
    EXPECT_NE(message.find(c.expected), std::string::npos) << "expected '" << c.expected << "' in: " << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }

  std::string missing = dir.path + "/missing.safetensors";
  EXPECT_NE(error_message([&] { safetensors_read(missing); }).find("cannot open checkpoint " + missing),
            std::string::npos);

  // Damage to a file we wrote ourselves: a flipped data bit, then a lost tail.
  std::vector<float> v(64, 0.25f);
  safetensors_write(path, {{"v", {64}, v.data()}}, {});
  std::string good = slurp(path);
  std::string flipped = good;
  flipped[flipped.size() - 100] ^= 0x10;
  EXPECT_EQ(read_error(flipped), "checkpoint " + path + " is corrupt (crc32 mismatch)");
  EXPECT_NE(read_error(good.substr(0, good.size() - 4)).find("truncated"), std::string::npos);
  EXPECT_NE(read_error(good.substr(0, 20)).find("truncated"), std::string::npos);
}
