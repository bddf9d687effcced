// Scoring a text in windows (infer/score.h): plain windows, and sliding windows where a stride below the window
// gives every byte more context, each byte scored exactly once.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "infer/score.h"
#include "models/model.h"

using namespace bytelm;

namespace {

// A stand-in model whose loss at each position is the number of bytes it sees there (its position in the
// window, plus one), and which counts how often each input byte value was read.
struct ContextLengthModel final : Model<float> {
  std::vector<int> reads = std::vector<int>(256, 0);
  float forward(const uint8_t* x, const uint8_t*, int B, int T, float* row_loss) override {
    for (int b = 0; b < B; b++)
      for (int t = 0; t < T; t++) {
        reads[x[(size_t)b * T + t]]++;
        row_loss[(size_t)b * T + t] = float(t + 1);
      }
    return 0;
  }
  void backward() override {}
  std::unique_ptr<ByteStream<float>> make_stream() const override { return nullptr; }
};

std::vector<uint8_t> positions(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; i++) v[i] = uint8_t(i);
  return v;
}

// The context (bytes read) of every byte after the first, from bits = context / ln 2.
std::vector<int> contexts(const std::vector<float>& bits) {
  std::vector<int> c;
  for (size_t i = 1; i < bits.size(); i++) c.push_back((int)std::lround(bits[i] * std::log(2.0)));
  return c;
}

}  // namespace

// stride = window: disjoint windows at multiples of the window, the last one shorter (the plain scoring).
TEST(Score, StrideEqualToWindowIsPlainWindows) {
  ContextLengthModel m;
  for (size_t n : {1, 2, 17, 25, 26}) {
    auto data = positions(n);
    std::vector<float> bits = score_bytes(m, data.data(), n, 8, 8, 3);
    ASSERT_EQ(bits.size(), n);
    EXPECT_EQ(bits[0], 8.f);
    std::vector<int> c = contexts(bits);
    for (size_t p = 0; p < c.size(); p++) EXPECT_EQ(c[p], int(p % 8) + 1) << "n " << n << " byte " << p + 1;
  }
}

// A smaller stride: one score per byte, the first window's bytes with the context before them, every later
// byte with at least window - stride + 1 bytes read (itself and window - stride before it), and the work
// window / stride times as much.
TEST(Score, SmallerStrideGivesEveryByteMoreContext) {
  int W = 8;
  size_t n = 200;
  auto data = positions(n);
  for (int S : {1, 3, 5, 8}) {
    ContextLengthModel m;
    std::vector<float> bits = score_bytes(m, data.data(), n, W, S, 4);
    ASSERT_EQ(bits.size(), n);
    std::vector<int> c = contexts(bits);
    for (size_t p = 0; p < c.size(); p++) {
      if (p < (size_t)W) {
        EXPECT_EQ(c[p], int(p) + 1) << "S " << S << " byte " << p + 1;
      } else {
        EXPECT_GE(c[p], W - S + 1) << "S " << S << " byte " << p + 1;
        EXPECT_LE(c[p], W) << "S " << S << " byte " << p + 1;
      }
    }
    // every input byte but the last is read; inner bytes by about W / S windows
    int inner = m.reads[100];
    EXPECT_GE(inner, W / S) << "S " << S;
    EXPECT_LE(inner, (W + S - 1) / S) << "S " << S;
    EXPECT_EQ(m.reads[n - 1], 0);
  }
}

// With a real model: each byte's bits are those the model gives it in its window.
TEST(Score, SlidingWindowsMatchDirectForwards) {
  ModelConfig c{"transformer", 16, 2, 1};
  c.head_dim = 8;
  auto m = make_model<float>(c, 3);
  std::vector<uint8_t> data(61);
  for (size_t i = 0; i < data.size(); i++) data[i] = uint8_t("the quick brown fox "[i % 20]);
  int W = 16, S = 6;
  std::vector<float> bits = score_bytes(*m, data.data(), data.size(), W, S, 2);
  // byte 40 (prediction 39): windows start at 0, 6, ..., window k scores predictions [(k-1) 6 + 16, k 6 + 16):
  // prediction 39 is window 4's (predictions 34..39), at position 39 - 24 = 15
  std::vector<float> row(W);
  m->forward(data.data() + 24, data.data() + 25, 1, W, row.data());
  EXPECT_NEAR(bits[40], row[15] / std::log(2.0), 1e-5);
  EXPECT_THROW(score_bytes(*m, data.data(), data.size(), W, 0, 2), Error);
  EXPECT_THROW(score_bytes(*m, data.data(), data.size(), W, W + 1, 2), Error);
}
