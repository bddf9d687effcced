// The ssm model as a whole: gradients, causality, streaming parity, sizes.
#include <gtest/gtest.h>

#include <cmath>

#include "causality.h"
#include "gradcheck.h"
#include "stream_parity.h"
#include "models/model.h"

using namespace bytelm;
using namespace bytelm::testing;

static std::vector<uint8_t> random_bytes(size_t n, Rng& rng) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng.next_u64());
  return v;
}

// A fresh ssm model. Attention pooling starts at query 0, where it is the mean: the tests set a random query so
// that they exercise the attention itself.
template <class T>
static std::unique_ptr<Model<T>> make_ssm(int d, int layers, int P, const std::string& patching, uint64_t seed) {
  auto m = make_model<T>({"ssm", d, layers, P, patching}, seed);
  Rng rng(seed);
  for (const ParamInfo& p : m->param_info())
    if (p.name == "patch.query")
      for (size_t i = 0; i < p.size; i++) m->params()[p.offset + i] = T(rng.normal());
  m->push_params();
  return m;
}

// The poolings and the patch sizes the causality and streaming tests run each at.
struct Pooling {
  const char* patching;
  std::vector<int> patches;
};
static const Pooling kPoolings[] = {{"mean", {1, 2, 4}}, {"attn", {2, 3, 4}}};

TEST(SsmModel, PresetParameterCounts) {
  EXPECT_EQ(param_count({"ssm", 256, 4, 2}), 1709824);
  EXPECT_EQ(param_count({"ssm", 512, 6, 2}), 9713152);
  EXPECT_EQ(param_count({"ssm", 1024, 16, 2}), 101272576);
  for (ModelConfig c : {ModelConfig{"ssm", 24, 3, 2}, ModelConfig{"ssm", 256, 4, 2}}) {
    auto m = make_model<float>(c, 1);
    EXPECT_EQ((int64_t)m->params().size(), param_count(c));
  }
  ModelConfig attn{"ssm", 24, 3, 2, "attn"};
  EXPECT_EQ(param_count(attn), param_count({"ssm", 24, 3, 2}) + 24);  // the query
  EXPECT_EQ((int64_t)make_model<float>(attn, 1)->params().size(), param_count(attn));
}

TEST(SsmModel, WholeModelGradientDouble) {
  for (std::string patching : {"mean", "attn"})
    for (int P : {1, 2, 3}) {
      auto m = make_ssm<double>(8, 2, P, patching, 7);
      Rng rng(11);
      expect_model_gradients(*m, 2, 9, rng, patching + " P=" + std::to_string(P) + " ");
    }
}

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

// patching none is patch 1 and nothing else; other values are errors.
TEST(SsmModel, PatchingValuesChecked) {
  EXPECT_EQ(param_count({"ssm", 16, 1, 1, "none"}), param_count({"ssm", 16, 1, 1, "mean"}));
  EXPECT_THROW(param_count({"ssm", 16, 1, 2, "none"}), std::exception);
  EXPECT_THROW(param_count({"ssm", 16, 1, 2, "bogus"}), std::exception);
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
