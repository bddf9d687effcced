// The leak check (infer/leakcheck.h, `bytelm leakcheck`): it passes causal models and fails models built to leak,
// at the position planted; a model that ignores its input cannot pass it vacuously, nor one that differs from itself.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "cli_fixture.h"
#include "core/error.h"
#include "infer/leakcheck.h"
#include "models/model.h"

namespace bytelm {
namespace {

LeakcheckOptions options(int seq, int sequences = 2, int positions = 0) {
  LeakcheckOptions o;
  o.seq = seq;
  o.sequences = sequences;
  o.positions = positions;
  o.batch = 4;
  return o;
}

// A real ssm model behind a corrupted view of the bytes: before the forward, input (or target) `at` is replaced
// by the one after it, so output `at`, and no other, sees a byte of its future.
class PlantedLeak final : public Model<float> {
 public:
  enum class Through { inputs, targets };
  PlantedLeak(int patch, int at, Through through)
      : inner_(make_model<float>({"ssm", 16, 2, patch}, 7)), at_(at), through_(through) {
    config_ = inner_->config();
  }
  float forward(const uint8_t* x, const uint8_t* y, int B, int seq, float* row_loss) override {
    std::vector<uint8_t> xs(x, x + (size_t)B * seq), ys(y, y + (size_t)B * seq);
    std::vector<uint8_t>& leaky = through_ == Through::inputs ? xs : ys;
    for (int b = 0; b < B && at_ + 1 < seq; b++) leaky[(size_t)b * seq + at_] = leaky[(size_t)b * seq + at_ + 1];
    return inner_->forward(xs.data(), ys.data(), B, seq, row_loss);
  }
  void backward() override { inner_->backward(); }
  std::unique_ptr<ByteStream<float>> make_stream() const override { return inner_->make_stream(); }

 private:
  std::unique_ptr<Model<float>> inner_;
  int at_;
  Through through_;
};

// A unigram model: every output is a function of its target alone. Causal, and useless to check causality with.
class IgnoresInput final : public Model<float> {
 public:
  IgnoresInput() { config_.patch = 1; }
  float forward(const uint8_t*, const uint8_t* y, int B, int seq, float* row_loss) override {
    for (int i = 0; i < B * seq; i++) row_loss[i] = 5.f + y[i] / 256.f;
    return 5.5f;
  }
  void backward() override {}
  std::unique_ptr<ByteStream<float>> make_stream() const override { return nullptr; }
};

// A causal model whose first forward is off (as one reading a freshly allocated buffer would be): the bytes
// changed cannot be blamed for differences then.
class FirstForwardDiffers final : public Model<float> {
 public:
  FirstForwardDiffers() { config_.patch = 1; }
  float forward(const uint8_t* x, const uint8_t*, int B, int seq, float* row_loss) override {
    for (int i = 0; i < B * seq; i++) row_loss[i] = x[i] / 256.f + (calls_ == 0 ? 1e-3f : 0.f);
    calls_++;
    return 0.f;
  }
  void backward() override {}
  std::unique_ptr<ByteStream<float>> make_stream() const override { return nullptr; }

 private:
  int calls_ = 0;
};

TEST(Leakcheck, SsmModelPasses) {
  for (int P : {1, 2, 4}) {
    auto m = make_model<float>({"ssm", 16, 2, P}, 3);
    for (int T : {1, 7, 13, 33}) {
      LeakcheckReport r = leakcheck(*m, options(T));
      std::string what = "P=" + std::to_string(P) + " T=" + std::to_string(T);
      EXPECT_TRUE(r.passed()) << what << ": " << r.summary();
      EXPECT_EQ(r.verdict(), "pass") << what;
      EXPECT_EQ(r.positions.size(), size_t(T - 1)) << what;
      EXPECT_EQ(r.rows_compared, 2 * int64_t(T - 1) * T / 2) << what << ": outputs 0..t for every t, two sequences";
      EXPECT_EQ(r.first_leak_position, -1) << what;
      EXPECT_EQ(r.max_change, 0.0) << what;
    }
  }
}

TEST(Leakcheck, FindsALeakThroughTheInputsWhereItWasPlanted) {
  for (int P : {1, 2, 4})
    for (int at : {0, 5, 11}) {
      PlantedLeak m(P, at, PlantedLeak::Through::inputs);
      LeakcheckReport r = leakcheck(m, options(13));
      std::string what = "P=" + std::to_string(P) + " at=" + std::to_string(at);
      EXPECT_EQ(r.verdict(), "leak") << what;
      EXPECT_FALSE(r.passed()) << what;
      EXPECT_EQ(r.first_leak_position, at) << what;
      EXPECT_EQ(r.first_leak_row, at) << what;
      EXPECT_EQ(r.leaking_positions, 1) << what << ": only changing byte at+1 moves output at";
      EXPECT_GT(r.max_change, 0.0) << what;
      EXPECT_NE(r.summary().find("output " + std::to_string(at) + " moved when only the bytes after position " +
                                 std::to_string(at) + " changed"),
                std::string::npos)
          << r.summary();
    }
}

// Perturbing the targets too is what catches a model that reads the next target.
TEST(Leakcheck, FindsALeakThroughTheTargets) {
  PlantedLeak m(2, 6, PlantedLeak::Through::targets);
  LeakcheckReport r = leakcheck(m, options(13));
  EXPECT_EQ(r.verdict(), "leak");
  EXPECT_EQ(r.first_leak_position, 6);
  EXPECT_EQ(r.first_leak_row, 6);
}

// With a spread of positions, a leak at one of them is found at that one.
TEST(Leakcheck, FindsALeakAmongSpreadPositions) {
  std::vector<int> spread = leakcheck_positions(300, 40, 2);
  int at = spread[20];
  PlantedLeak m(2, at, PlantedLeak::Through::inputs);
  LeakcheckReport r = leakcheck(m, options(300, 1, 40));
  EXPECT_EQ(r.positions, spread);
  EXPECT_EQ(r.first_leak_position, at);
  EXPECT_EQ(r.leaking_positions, 1);
}

TEST(Leakcheck, ModelThatIgnoresItsInputIsVacuous) {
  IgnoresInput m;
  LeakcheckReport r = leakcheck(m, options(9));
  EXPECT_EQ(r.verdict(), "vacuous");
  EXPECT_FALSE(r.passed());
  EXPECT_FALSE(r.input_dependent);
  EXPECT_EQ(r.first_leak_position, -1) << "outputs depend only on their own targets: causal";
}

TEST(Leakcheck, ModelThatDiffersFromItselfIsNondeterministic) {
  FirstForwardDiffers m;
  LeakcheckReport r = leakcheck(m, options(9));
  EXPECT_EQ(r.verdict(), "nondeterministic");
  EXPECT_FALSE(r.passed());
  EXPECT_FALSE(r.deterministic);
  EXPECT_EQ(r.first_leak_position, -1) << "the later, settled run is the reference: no leak is claimed";
}

TEST(Leakcheck, PositionsCoverBothEndsPatchByPatchAndSpreadBetween) {
  EXPECT_EQ(leakcheck_positions(1, 0, 2), std::vector<int>{});
  EXPECT_EQ(leakcheck_positions(5, 0, 2), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(leakcheck_positions(5, 9, 2), (std::vector<int>{0, 1, 2, 3})) << "more than there are: all";
  for (int T : {130, 1000, 4096})
    for (int P : {1, 2, 4, 64})
      for (int count : {1, 2, 3, 16, 128}) {
        std::vector<int> t = leakcheck_positions(T, count, P);
        std::string what = "T=" + std::to_string(T) + " P=" + std::to_string(P) + " count=" + std::to_string(count);
        ASSERT_EQ(t.size(), size_t(count)) << what;
        EXPECT_TRUE(std::is_sorted(t.begin(), t.end())) << what;
        EXPECT_EQ(std::set<int>(t.begin(), t.end()).size(), t.size()) << what << ": no repeats";
        EXPECT_EQ(t.front(), 0) << what;
        if (count >= 2) {
          EXPECT_EQ(t.back(), T - 2) << what;
        }
        int ends = std::min(2 * P, count / 4);  // every offset of the first and last two patches, as far as count allows
        for (int i = 0; i < ends; i++) {
          EXPECT_EQ(t[i], i) << what;
          EXPECT_EQ(t[count - 1 - i], T - 2 - i) << what;
        }
      }
}

TEST(Leakcheck, BadOptionsAreErrors) {
  auto m = make_model<float>({"ssm", 16, 1, 2}, 3);
  EXPECT_THROW(leakcheck(*m, options(0)), Error);
  EXPECT_THROW(leakcheck(*m, options(8, 0)), Error);
  EXPECT_THROW(leakcheck(*m, options(8, 1, -1)), Error);
}

// The command as a user meets it.
class LeakcheckCli : public testing::Cli {
 protected:
  testing::Result leakcheck(const std::string& args) { return run("leakcheck " + args); }
};

TEST_F(LeakcheckCli, FreshPresetModelPasses) {
  testing::Result r = leakcheck("--preset ssm-demo --seq 33 --sequences 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out.rfind("{\"verdict\":\"pass\",\"first_leak_position\":null,", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\"positions\":32,\"sequences\":2,\"seq\":33,\"rows_compared\":1056,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"model\":{\"model\":\"ssm\",\"d\":128,\"layers\":4,\"patch\":1,\"patching\":\"mean\"}"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1);
  // a fresh model of another pooling: its query is zero (the mean), but the wiring is what a leak is in
  testing::Result attn = leakcheck("--preset ssm-demo --patch 3 --patching attn --seq 33 --sequences 2");
  ASSERT_EQ(attn.code, 0) << attn.err;
  EXPECT_NE(attn.out.find("\"patch\":3,\"patching\":\"attn\"}"), std::string::npos) << attn.out;
  for (std::string patching : {"local", "soft", "entropy"}) {
    testing::Result r = leakcheck("--preset ssm-demo --patch 3 --patching " + patching + " --seq 33 --sequences 2");
    EXPECT_EQ(r.code, 0) << patching << ": " << r.err;
  }
  // every model key is a flag here, the transformer and hybrid ones too
  testing::Result hybrid = leakcheck("--preset hybrid-10m --d 32 --layers 2 --head-dim 16 --hybrid-layers sa --conv-len 5 "
                      "--bigram-buckets 64 --seq 24 --sequences 1");
  ASSERT_EQ(hybrid.code, 0) << hybrid.err;
  EXPECT_NE(hybrid.out.find("\"head_dim\":16"), std::string::npos) << hybrid.out;
  EXPECT_NE(hybrid.out.find("\"hybrid_layers\":\"sa\""), std::string::npos) << hybrid.out;
}

TEST_F(LeakcheckCli, BadInputIsOneLine) {
  expect_clean_error(leakcheck("--ckpt /nonexistent/bytelm-run"), "/nonexistent/bytelm-run");
  expect_clean_error(leakcheck("--preset ssm-huge"), "unknown preset");
  expect_clean_error(leakcheck("--ckpt x --d 32"), "--ckpt brings its own config");
  expect_clean_error(leakcheck("--preset ssm-demo --seq 1"), "--seq must be >= 2");
}

TEST_F(LeakcheckCli, HelpTeaches) {
  testing::Result r = leakcheck("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("usage: bytelm leakcheck"), std::string::npos);
  EXPECT_NE(r.out.find("impossibly low bits per byte"), std::string::npos);
}

}  // namespace
}  // namespace bytelm
