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

TEST(SsmModel, PresetParameterCounts) {
  EXPECT_EQ(param_count({"ssm", 256, 4, 2}), 1709824);
  EXPECT_EQ(param_count({"ssm", 512, 6, 2}), 9713152);
  EXPECT_EQ(param_count({"ssm", 1024, 16, 2}), 101272576);
  for (ModelConfig c : {ModelConfig{"ssm", 24, 3, 2}, ModelConfig{"ssm", 256, 4, 2}}) {
    auto m = make_model<float>(c, 1);
    EXPECT_EQ((int64_t)m->params().size(), param_count(c));
  }
}

TEST(SsmModel, WholeModelGradientDouble) {
  for (int P : {1, 2, 3}) {
    ModelConfig c{"ssm", 8, 2, P};
    auto m = make_model<double>(c, 7);
    Rng rng(11);
    int B = 2, T = 9;
    auto x = random_bytes(B * T, rng), y = random_bytes(B * T, rng);
    // Perturb every parameter off its init so gradients through LN weights, D, start etc. are generic.
    for (double& w : m->params()) w += 0.1 * rng.normal();
    std::vector<double>& W = m->params();
    auto loss = [&] { return m->forward(x.data(), y.data(), B, T, nullptr); };
    std::fill(m->grads().begin(), m->grads().end(), 0.0);
    loss();
    m->backward();
    std::vector<double> G = m->grads();
    // check each tensor separately so a failure names it
    for (const ParamInfo& p : m->param_info()) {
      std::vector<double> slice(W.begin() + p.offset, W.begin() + p.offset + p.size);
      std::vector<double> gslice(G.begin() + p.offset, G.begin() + p.offset + p.size);
      auto sliced_loss = [&] {
        std::copy(slice.begin(), slice.end(), W.begin() + p.offset);
        return loss();
      };
      expect_gradient((p.name + " P=" + std::to_string(P)).c_str(), slice, gslice, sliced_loss, 1e-5, 60);
      std::copy(slice.begin(), slice.end(), W.begin() + p.offset);
    }
  }
}

TEST(SsmModel, CausalityBitIdentical) {
  for (int P : {1, 2, 4}) {
    auto m = make_model<float>({"ssm", 16, 2, P}, 3);
    Rng rng(5);
    for (int T : {1, 7, 13, 33}) expect_causal(*m, T, rng, "P=" + std::to_string(P) + " T=" + std::to_string(T));
  }
}

// The streams, byte by byte, give the parallel forward's predictions: one stream (make_stream's) and several
// stepped together.
TEST(SsmModel, StreamMatchesParallelForward) {
  for (int P : {1, 2, 4})
    for (int B : {1, 3}) {
      auto m = make_model<float>({"ssm", 32, 3, P}, 9);
      Rng rng(13);
      EXPECT_LT(bytelm::testing::stream_vs_forward_error(*m, B, 37, rng), 1e-4) << "P=" << P << " B=" << B;
    }
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
