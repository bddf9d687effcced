// The ssm model as a whole: gradients, causality, streaming parity, sizes.
#include <gtest/gtest.h>

#include <cmath>

#include "causality.h"
#include "gradcheck.h"
#include "model_testing.h"
#include "stream_parity.h"
#include "layers/patch_entropy.h"
#include "models/model.h"

using namespace bytelm;
using namespace bytelm::testing;

// The entropy threshold of the tests' entropy models: about half the bytes of their random tables exceed it.
constexpr double kTestEntropyThreshold = 6.5;

// A fresh ssm model. The variants start at (or near) the mean pooling: the tests draw their parameters so that
// they exercise the variant itself. The attention's query and the soft boundary scores at random; each row of
// the bigram table a random scale, so that its entropies spread over 4..8 bits and patches of many lengths close.
template <class T>
static std::unique_ptr<Model<T>> make_ssm(int d, int layers, int P, const std::string& patching, uint64_t seed) {
  auto m = make_model<T>({"ssm", d, layers, P, patching, kTestEntropyThreshold}, seed);
  Rng rng(seed);
  for (const ParamInfo& p : m->param_info()) {
    T* w = m->params().data() + p.offset;
    if (p.name == "patch.query" || p.name == "patch.boundary.weight" || p.name == "patch.boundary.bias")
      for (size_t i = 0; i < p.size; i++) w[i] = T(rng.normal());
    if (p.name == "patch.bigram.weight")
      for (int a = 0; a < 256; a++) {
        double scale = 3 * rng.uniform() / kBigramLogitScale;
        for (int k = 0; k < 256; k++) w[a * 256 + k] = T(scale * rng.normal());
      }
  }
  m->push_params();
  return m;
}

// The poolings and the patch sizes the causality and streaming tests run each at.
struct Pooling {
  const char* patching;
  std::vector<int> patches;
};
static const Pooling kPoolings[] = {{"mean", {1, 2, 4}},  {"attn", {2, 3, 4}},    {"local", {1, 2, 3, 4}},
                                    {"soft", {1, 2, 4}}, {"entropy", {1, 2, 3}}};

TEST(SsmModel, PresetParameterCounts) {
  EXPECT_EQ(param_count({"ssm", 256, 4, 2}), 1709824);
  EXPECT_EQ(param_count({"ssm", 512, 6, 2}), 9713152);
  EXPECT_EQ(param_count({"ssm", 1024, 16, 2}), 101272576);
  for (ModelConfig c : {ModelConfig{"ssm", 24, 3, 2}, ModelConfig{"ssm", 256, 4, 2}}) {
    auto m = make_model<float>(c, 1);
    EXPECT_EQ(m->param_count(), param_count(c));
  }
  int64_t mean = param_count({"ssm", 24, 3, 2}), block = param_count({"ssm", 24, 4, 2}) - mean;
  struct Extra { const char* patching; int64_t params; };
  for (Extra e : {Extra{"attn", 24}, Extra{"local", block}, Extra{"soft", 24 + 1}, Extra{"entropy", 256 * 256}}) {
    ModelConfig c{"ssm", 24, 3, 2, e.patching};  // attn: the query; local: one block; soft: the score; the bigram
    EXPECT_EQ(param_count(c), mean + e.params) << e.patching;
    auto m = make_model<float>(c, 1);
    EXPECT_EQ(m->param_count(), param_count(c)) << e.patching;
    expect_aligned_params(*m);  // soft: patch.boundary.bias [1] comes before the blocks' weights
  }
}

static void expect_ssm_gradients(const std::string& patching, std::vector<int> patches) {
  for (int P : patches) {
    auto m = make_ssm<double>(8, 2, P, patching, 7);
    Rng rng(11);
    expect_model_gradients(*m, 2, 9, rng, patching + " P=" + std::to_string(P) + " ");
  }
}

TEST(SsmModel, WholeModelGradientDouble) {
  expect_ssm_gradients("mean", {1, 2, 3});
  expect_ssm_gradients("attn", {1, 2, 3});
}
// T = 9: the local blocks' scans split by row at P = 2 and 4, one run of all the patches at P = 3.
TEST(SsmModel, LocalGradientDouble) { expect_ssm_gradients("local", {2, 3, 4}); }
TEST(SsmModel, SoftGradientDouble) { expect_ssm_gradients("soft", {1, 2, 3}); }
// The bigram table's gradient is its own loss's, which forward adds to the one it returns.
TEST(SsmModel, EntropyGradientDouble) { expect_ssm_gradients("entropy", {1, 2, 3}); }

TEST(SsmModel, CausalityBitIdentical) {
  for (const Pooling& pooling : kPoolings)
    for (int P : pooling.patches) {
      auto m = make_ssm<float>(16, 2, P, pooling.patching, 3);
      Rng rng(5);
      for (int T : {1, 7, 13, 33})
        expect_causal(*m, T, rng, std::string(pooling.patching) + " P=" + std::to_string(P) + " T=" + std::to_string(T));
    }
}

// The streams, byte by byte, give the parallel forward's predictions: one stream (make_stream's) and several
// stepped together.
TEST(SsmModel, StreamMatchesParallelForward) {
  for (const Pooling& pooling : kPoolings)
    for (int P : pooling.patches)
      for (int B : {1, 3}) {
        auto m = make_ssm<float>(32, 3, P, pooling.patching, 9);
        Rng rng(13);
        EXPECT_LT(bytelm::testing::stream_vs_forward_error(*m, B, 37, rng), 1e-4)
            << pooling.patching << " P=" << P << " B=" << B;
      }
}

// A fresh attn model (query 0) predicts what the mean model of the same seed does: the init draws the same
// weights, and a zero query weighs every byte of a patch 1/P.
TEST(SsmModel, AttnAtZeroQueryEqualsMeanPooling) {
  int B = 2, T = 31;
  Rng rng(6);
  auto x = random_bytes(B * T, rng), y = random_bytes(B * T, rng);
  std::vector<float> mean_rows(B * T), attn_rows(B * T);
  make_model<float>({"ssm", 32, 2, 3, "mean"}, 8)->forward(x.data(), y.data(), B, T, mean_rows.data());
  make_model<float>({"ssm", 32, 2, 3, "attn"}, 8)->forward(x.data(), y.data(), B, T, attn_rows.data());
  for (int i = 0; i < B * T; i++) EXPECT_NEAR(attn_rows[i], mean_rows[i], 1e-6) << "row " << i;
}

// A fresh entropy model (a zero bigram table: 8 bits everywhere, every patch closes at P bytes) predicts what
// the mean model of the same seed does, to the bit: the same patches, summed and divided alike.
TEST(SsmModel, EntropyAtAZeroTableEqualsMeanPooling) {
  for (int P : {1, 3}) {
    int B = 2, T = 31;
    Rng rng(6);
    auto x = random_bytes(B * T, rng), y = random_bytes(B * T, rng);
    std::vector<float> mean_rows(B * T), entropy_rows(B * T);
    make_model<float>({"ssm", 32, 2, P, "mean"}, 8)->forward(x.data(), y.data(), B, T, mean_rows.data());
    auto entropy = make_model<float>({"ssm", 32, 2, P, "entropy"}, 8);
    float loss = entropy->forward(x.data(), y.data(), B, T, entropy_rows.data());
    EXPECT_EQ(entropy_rows, mean_rows) << "P=" << P;
    float mean_loss = 0;
    for (float r : mean_rows) mean_loss += r / (B * T);
    EXPECT_NEAR(loss, mean_loss + std::log(256.0), 1e-4) << "the returned loss adds the uniform table's ln 256";
    EXPECT_NEAR(entropy->last_extra_loss(), std::log(256.0), 1e-5) << "and says which part it added";
  }
}

// The local decoder reads the open patch: with P = 4, byte 5 predicts from byte 4 (its patch's first) under
// local, and cannot under mean pooling, where it reads patch 0 (bytes 0..3) and its own embedding only.
TEST(SsmModel, LocalReadsTheOpenPatch) {
  int T = 8;
  std::vector<uint8_t> x(T, 'a'), y(T, 'b');
  for (const char* patching : {"mean", "local"}) {
    auto m = make_model<float>({"ssm", 16, 2, 4, patching}, 3);
    std::vector<float> before(T), after(T);
    m->forward(x.data(), y.data(), 1, T, before.data());
    x[4] = 'z';
    m->forward(x.data(), y.data(), 1, T, after.data());
    x[4] = 'a';
    EXPECT_EQ(before[3], after[3]) << patching;
    if (std::string(patching) == "local") EXPECT_NE(before[5], after[5]);
    else EXPECT_EQ(before[5], after[5]);
  }
}

// patching none is patch 1 and nothing else; other values are errors.
TEST(SsmModel, PatchingValuesChecked) {
  EXPECT_EQ(param_count({"ssm", 16, 1, 1, "none"}), param_count({"ssm", 16, 1, 1, "mean"}));
  EXPECT_THROW(param_count({"ssm", 16, 1, 2, "none"}), std::exception);
  EXPECT_THROW(param_count({"ssm", 16, 1, 2, "bogus"}), std::exception);
  EXPECT_THROW(param_count({"ssm", 16, 1, 2, "entropy", 8.0}), std::exception);
  EXPECT_THROW(param_count({"ssm", 16, 1, 2, "entropy", -1.0}), std::exception);
  EXPECT_THROW(param_count({"mamba", 16, 1, 1, "local"}), std::exception);
}

TEST(SsmModel, SingleStreamIsTheFirstOfTheBatch) {
  auto m = make_model<float>({"ssm", 32, 2, 2}, 4);
  auto one = m->make_stream();
  auto three = m->make_streams(3);
  std::vector<float> l1(256), l3(3 * 256);
  const char* text = "one stream, three streams";
  for (const char* p = text; *p; p++) {
    uint8_t bytes[3] = {uint8_t(*p), uint8_t('x'), uint8_t(*p ^ 1)};
    one->step(bytes[0], l1.data());
    three->step(bytes, l3.data());
    for (int k = 0; k < 256; k++)  // the same sums; only a batched product may order them differently
      ASSERT_NEAR(l1[k], l3[k], 1e-5 * (1 + std::fabs(l1[k]))) << "at byte " << (p - text);
  }
}

TEST(SsmModel, FirstLossNearUniform) {
  auto m = make_model<float>({"ssm", 64, 2, 2}, 1);
  Rng rng(2);
  auto x = random_bytes(512, rng), y = random_bytes(512, rng);
  float loss = m->forward(x.data(), y.data(), 2, 256, nullptr);
  EXPECT_NEAR(loss, std::log(256.0), 0.3);
}
