// The transformer and hybrid families: their layers (RoPE, the LeakyReLU^2 MLP, soft-capping, SmearGate, hashed
// bigrams, scaled skips, the SiLU gate, the KV-cache attention step, the S4D-Lin init) against finite differences
// and direct computation, and the models as a whole: gradients, causality, streaming, config errors, the CLI.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "causality.h"
#include "model_testing.h"
#include "core/error.h"
#include "gradcheck.h"
#include "layers/attention.h"
#include "layers/bigram.h"
#include "layers/causal_conv.h"
#include "layers/mlp.h"
#include "layers/rope.h"
#include "layers/scaled_add.h"
#include "layers/silu_gate.h"
#include "layers/smear.h"
#include "layers/softcap.h"
#include "models/model.h"
#include "stream_parity.h"
#include "train/adamw.h"
#include "train/config.h"

using namespace bytelm;
using namespace bytelm::testing;
namespace fs = std::filesystem;
using V = std::vector<double>;

// A tiny transformer with every trick on, small enough for finite differences: 2 heads of 4, 3 layers (one
// U-Net skip and a middle layer without), 5 bigram buckets of width 3, a cap low enough to bend the logits.
static ModelConfig tiny_transformer() {
  ModelConfig c{"transformer", 8, 3, 1};
  c.head_dim = 4;
  c.bigram_buckets = 5;
  c.bigram_dim = 3;
  c.softcap = 2;
  c.context = 64;
  return c;
}

static ModelConfig tiny_hybrid(const std::string& layers, int conv_len) {
  ModelConfig c = tiny_transformer();
  c.arch = "hybrid";
  c.layers = (int)layers.size();
  c.hybrid_layers = layers;
  c.conv_len = conv_len;
  return c;
}

TEST(TransformerLayers, RopeGradientAndRelativePositions) {
  Rng rng(1);
  RopeShape s{2, 5, 3, 4, 3 * 4 + 2, 3};  // a stride wider than the heads, as in a packed qkv row
  size_t n = (size_t)s.B * s.T * s.row_stride();
  V x = random_vector(n, rng), R = random_vector(n, rng), y(n);
  auto loss = [&] {
    y = x;
    rope_forward(y.data(), s);
    return dot(y, R);
  };
  V dx = R;
  rope_backward(dx.data(), s);
  expect_gradient("rope dx", x, dx, loss);
  // q_t . k_j after rotation depends on t - j only: shifting both positions leaves it unchanged
  V q = random_vector(4, rng), k = random_vector(4, rng);
  auto rotated_dot = [&](int tq, int tk) {
    V a = q, b = k;
    rope_forward(a.data(), RopeShape{1, 1, 1, 4, 0, tq});
    rope_forward(b.data(), RopeShape{1, 1, 1, 4, 0, tk});
    return dot(a, b);
  };
  EXPECT_NEAR(rotated_dot(7, 3), rotated_dot(1004, 1000), 1e-9);
  EXPECT_GT(std::fabs(rotated_dot(7, 3) - rotated_dot(7, 5)), 1e-3);
}

TEST(TransformerLayers, MlpGradient) {
  // not seed 2: it puts a pre-activation 1e-5 from the kink at 0, within the finite difference's step
  Rng rng(3);
  int N = 5, d = 4, H = 6;
  for (double leak : {0.5, 0.0}) {
    V x = random_vector(N * d, rng), W1 = random_vector(H * d, rng), W2 = random_vector(d * H, rng);
    V R = random_vector(N * d, rng), y(N * d), h(N * H), a(N * H), scratch(N * H);
    auto loss = [&] {
      mlp_forward(y.data(), h.data(), a.data(), x.data(), W1.data(), W2.data(), N, d, H, leak);
      return dot(y, R);
    };
    loss();
    V dx(N * d, 3.0), dW1(H * d, 0.0), dW2(d * H, 0.0);
    mlp_backward(dx.data(), dW1.data(), dW2.data(), R.data(), x.data(), h.data(), a.data(), W1.data(), W2.data(), N, d,
                 H, leak, scratch.data());
    std::string what = " leak=" + std::to_string(leak);
    expect_gradient(("dx" + what).c_str(), x, dx, loss);
    expect_gradient(("dW1" + what).c_str(), W1, dW1, loss);
    expect_gradient(("dW2" + what).c_str(), W2, dW2, loss);
  }
}

TEST(TransformerLayers, SoftcapGradientAndBound) {
  Rng rng(3);
  V x = random_vector(50, rng, 5.0), R = random_vector(50, rng), y(50);
  auto loss = [&] {
    softcap_forward(y.data(), x.data(), y.size(), 3.0);
    return dot(y, R);
  };
  loss();
  for (double v : y) EXPECT_LT(std::fabs(v), 3.0);
  V dx(50);
  softcap_backward(dx.data(), R.data(), x.data(), dx.size(), 3.0);
  expect_gradient("softcap dx", x, dx, loss);
}

TEST(TransformerLayers, SmearGradient) {
  Rng rng(4);
  int B = 2, T = 6, d = 5, k = 3;
  V x = random_vector(B * T * d, rng), w = random_vector(k, rng), lambda{0.7}, R = random_vector(B * T * d, rng);
  V y(B * T * d), gate(B * T);
  auto loss = [&] {
    smear_forward(y.data(), gate.data(), x.data(), w.data(), lambda.data(), B, T, d, k, (const double*)nullptr);
    return dot(y, R);
  };
  loss();
  V dx(B * T * d, 9.0), dw(k, 0.0), dlambda(1, 0.0);
  smear_backward(dx.data(), dw.data(), dlambda.data(), R.data(), x.data(), gate.data(), w.data(), lambda.data(), B, T,
                 d, k);
  expect_gradient("smear dx", x, dx, loss);
  expect_gradient("smear dw", w, dw, loss);
  expect_gradient("smear dlambda", lambda, dlambda, loss);
  loss();  // y at x again (the checks leave it at the last perturbation)
  // position 0 has nothing before it; a stream carries the previous row: one step at a time gives the same rows
  for (int i = 0; i < d; i++) EXPECT_EQ(y[i], x[i]);
  V step(d), g(1);
  for (int t = 1; t < T; t++) {
    smear_forward(step.data(), g.data(), x.data() + t * d, w.data(), lambda.data(), 1, 1, d, k, x.data() + (t - 1) * d);
    for (int i = 0; i < d; i++) EXPECT_EQ(step[i], y[t * d + i]) << t;
  }
}

TEST(TransformerLayers, BigramLookupAndGradient) {
  int buckets = 7, dim = 2;
  for (int p = 0; p <= 256; p++)
    for (int b = 0; b < 256; b += 51) {
      int k = bigram_bucket(p, b, buckets);
      ASSERT_TRUE(k >= 0 && k < buckets);
    }
  EXPECT_EQ(bigram_bucket(256, 65, 4096), bigram_bucket(256, 65, 4096));
  // the pairs spread over the table
  std::vector<int> hits(64, 0);
  for (int p = 0; p < 256; p++)
    for (int b = 0; b < 256; b++) hits[bigram_bucket(p, b, 64)]++;
  EXPECT_GT(*std::min_element(hits.begin(), hits.end()), 512);
  Rng rng(5);
  uint8_t x[] = {3, 9, 9, 200, 3, 9};
  V table = random_vector(buckets * dim, rng), R = random_vector(6 * dim, rng), e(6 * dim);
  auto loss = [&] {
    bigram_forward(e.data(), x, table.data(), 2, 3, buckets, dim, (const uint8_t*)nullptr);
    return dot(e, R);
  };
  loss();
  // row 1 starts again with "no previous byte": (none, 200) there, (9, 200) in one long row
  EXPECT_EQ(e[3 * dim], table[bigram_bucket(256, 200, buckets) * dim]);
  V dtable(buckets * dim, 0.0);
  bigram_backward(dtable.data(), R.data(), x, 2, 3, buckets, dim);
  expect_gradient("bigram dtable", table, dtable, loss);
  // a stream's previous byte stands in for "none"
  uint8_t prev = 9;
  V one(dim);
  bigram_forward(one.data(), x + 3, table.data(), 1, 1, buckets, dim, &prev);
  EXPECT_EQ(one[0], table[bigram_bucket(9, 200, buckets) * dim]);
}

TEST(TransformerLayers, ScaledAddAndSiluGateGradients) {
  Rng rng(6);
  size_t n = 12;
  V x = random_vector(n, rng), y0 = random_vector(n, rng), w{0.8}, R = random_vector(n, rng), y(n);
  auto skip_loss = [&] {
    y = y0;
    scaled_add_forward(y.data(), x.data(), w.data(), n);
    return dot(y, R);
  };
  V dx(n), dw(1, 0.0);
  scaled_add_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), n);
  expect_gradient("skip dx", x, dx, skip_loss);
  expect_gradient("skip dw", w, dw, skip_loss);
  V v = random_vector(n, rng), z = random_vector(n, rng), g(n);
  auto gate_loss = [&] {
    silu_gate_forward(g.data(), v.data(), z.data(), n);
    return dot(g, R);
  };
  V dv(n), dz(n);
  silu_gate_backward(dv.data(), dz.data(), R.data(), v.data(), z.data(), n);
  expect_gradient("gate dv", v, dv, gate_loss);
  expect_gradient("gate dz", z, dz, gate_loss);
}

// The KV-cache step gives the parallel forward's rows while the cache holds every position, and past that the
// attention over the last `slots` positions (the ring's indexing).
TEST(TransformerLayers, AttentionDecodeMatchesForward) {
  Rng rng(7);
  int B = 2, T = 11, H = 2, Dh = 3, D = H * Dh, slots = 4;
  AttentionShape s{B, T, H, Dh, 3 * D};
  V qkv = random_vector((size_t)B * T * 3 * D, rng), o((size_t)B * T * D), lse((size_t)B * H * T);
  attention_forward(o.data(), lse.data(), qkv.data(), qkv.data() + D, qkv.data() + 2 * D, s, 0.6);
  for (int cache_slots : {T, slots}) {
    V kc((size_t)B * cache_slots * D), vc(kc.size()), step((size_t)B * D), packed((size_t)B * 3 * D);
    for (int t = 0; t < T; t++) {
      for (int b = 0; b < B; b++)
        std::copy_n(qkv.begin() + ((size_t)b * T + t) * 3 * D, 3 * D, packed.begin() + (size_t)b * 3 * D);
      attention_decode(step.data(), kc.data(), vc.data(), packed.data(), packed.data() + D, packed.data() + 2 * D,
                       3 * D, B, H, Dh, cache_slots, t, 0.6);
      int first = std::max(0, t - cache_slots + 1), n = t - first + 1;
      for (int b = 0; b < B; b++) {
        // the reference: the parallel forward over the window of the last n positions of row b
        V window(qkv.begin() + ((size_t)b * T + first) * 3 * D, qkv.begin() + ((size_t)b * T + t + 1) * 3 * D);
        V wo((size_t)n * D), wl((size_t)H * n);
        attention_forward(wo.data(), wl.data(), window.data(), window.data() + D, window.data() + 2 * D,
                          AttentionShape{1, n, H, Dh, 3 * D}, 0.6);
        for (int i = 0; i < D; i++)
          EXPECT_NEAR(step[(size_t)b * D + i], wo[(size_t)(n - 1) * D + i], 1e-12)
              << "slots " << cache_slots << " t " << t << " b " << b;
        if (cache_slots == T) {
          for (int i = 0; i < D; i++) EXPECT_EQ(step[(size_t)b * D + i], o[((size_t)b * T + t) * D + i]);
        }
      }
    }
  }
}

// The S4D-Lin init: finite taps whose size decays with the lag in every channel on average.
TEST(TransformerLayers, S4dLinInitDecays) {
  Rng rng(8);
  int C = 64, K = 256;
  std::vector<float> w((size_t)C * K);
  causal_conv_init_s4d_lin(w.data(), C, K, 4, rng);
  double near = 0, far = 0;
  for (int c = 0; c < C; c++)
    for (int j = 0; j < 16; j++) {
      ASSERT_TRUE(std::isfinite(w[(size_t)c * K + K - 1 - j]));
      near += std::fabs(w[(size_t)c * K + K - 1 - j]);  // lags 0..15
      far += std::fabs(w[(size_t)c * K + 15 - j]);      // lags 240..255
    }
  EXPECT_GT(near, 3 * far);
  EXPECT_GT(far, 0.0);  // the slowest channels still reach the far end
}

TEST(TransformerModel, ParameterCounts) {
  EXPECT_NEAR(param_count(preset("transformer-10m").model), 10e6, 0.5e6);
  EXPECT_NEAR(param_count(preset("transformer-30m").model), 30e6, 2e6);
  EXPECT_NEAR(param_count(preset("hybrid-10m").model), 10e6, 0.5e6);
  ModelConfig off = tiny_transformer();
  off.tie_embeddings = 0;
  off.bigram_buckets = 0;
  off.smear = 0;
  off.unet = 0;
  for (ModelConfig c : {tiny_transformer(), tiny_hybrid("sasa", 3), off, preset("transformer-10m").model}) {
    auto m = make_model<float>(c, 1);
    EXPECT_EQ(m->param_count(), param_count(c)) << model_config_json(c);
    expect_aligned_params(*m);  // smear.lambda [1] comes before the layers' weights
  }
  // each ablation is one key: the untied head adds 256 d, dropping the bigram its table and projection
  ModelConfig c = tiny_transformer();
  int64_t base = param_count(c);
  c.tie_embeddings = 0;
  EXPECT_EQ(param_count(c), base + 256 * 8);
  c = tiny_transformer();
  c.bigram_buckets = 0;
  EXPECT_EQ(param_count(c), base - 5 * 3 - 8 * 3);
}

TEST(TransformerModel, WholeModelGradientDouble) {
  Rng rng(11);
  auto t = make_model<double>(tiny_transformer(), 7);
  expect_model_gradients(*t, 2, 7, rng, "transformer ");
  // every trick off, and leak 0 (ReLU^2)
  ModelConfig off = tiny_transformer();
  off.rope = off.tie_embeddings = off.smear = off.unet = 0;
  off.softcap = 0;
  off.bigram_buckets = 0;
  off.mlp_leak = 0;
  off.layers = 2;
  auto plain = make_model<double>(off, 8);
  expect_model_gradients(*plain, 2, 5, rng, "plain ");
}

TEST(TransformerModel, HybridWholeModelGradientDouble) {
  Rng rng(12);
  // kernels shorter and longer than the sequence; 4 layers: two skips
  auto short_kernel = make_model<double>(tiny_hybrid("sasa", 3), 7);
  expect_model_gradients(*short_kernel, 2, 7, rng, "hybrid K=3 ");
  auto long_kernel = make_model<double>(tiny_hybrid("ssa", 9), 9);
  expect_model_gradients(*long_kernel, 1, 6, rng, "hybrid K=9 ");
}

TEST(TransformerModel, CausalityBitIdentical) {
  Rng rng(5);
  auto t = make_model<float>(tiny_transformer(), 3);
  for (int T : {1, 7, 20}) expect_causal(*t, T, rng, "transformer T=" + std::to_string(T));
  auto h = make_model<float>(tiny_hybrid("saas", 5), 3);
  for (int T : {1, 7, 20}) expect_causal(*h, T, rng, "hybrid T=" + std::to_string(T));
}

TEST(TransformerModel, StreamMatchesParallelForward) {
  ModelConfig wide = tiny_transformer();
  wide.d = 32;
  wide.head_dim = 8;
  for (ModelConfig c : {wide, tiny_hybrid("sasa", 6)}) {
    auto m = make_model<float>(c, 9);
    Rng perturb(3);
    for (float& w : m->params()) w += float(0.05 * perturb.normal());  // the SmearGate and skips off their init
    for (int B : {1, 3}) {
      Rng rng(13);
      EXPECT_LT(stream_vs_forward_error(*m, B, 37, rng), 1e-4) << c.arch << " B=" << B;
    }
  }
}

// Past `context` bytes the stream attends to the last `context` positions. With one attention layer and no
// SmearGate or bigram (whose cached keys and values depend on their own byte only), that is exactly the parallel
// forward's last prediction over the window of the last `context` bytes.
TEST(TransformerModel, StreamSlidesPastContext) {
  ModelConfig c = tiny_transformer();
  c.layers = 1;
  c.smear = 0;
  c.bigram_buckets = 0;
  c.context = 6;
  auto m = make_model<float>(c, 4);
  Rng rng(14);
  int T = 20;
  auto x = random_bytes(T, rng);
  auto stream = m->make_stream();
  std::vector<float> logits(256), row(c.context);
  for (int t = 0; t < T; t++) {
    stream->step(x[t], logits.data());
    int first = std::max(0, t - c.context + 1), n = t - first + 1;
    std::vector<uint8_t> y(n, 65);
    m->forward(x.data() + first, y.data(), 1, n, row.data());
    double mx = *std::max_element(logits.begin(), logits.end()), s = 0;
    for (float l : logits) s += std::exp(l - mx);
    EXPECT_NEAR(mx + std::log(s) - logits[65], row[n - 1], 1e-4) << "t " << t;
  }
}

TEST(TransformerModel, FirstLossNearUniform) {
  Rng rng(2);
  for (ModelConfig c : {preset("transformer-10m").model, preset("hybrid-10m").model}) {
    c.d = 64;
    c.layers = 4;
    if (c.arch == "hybrid") c.hybrid_layers = "ssaa";
    auto m = make_model<float>(c, 1);
    auto x = random_bytes(256, rng), y = random_bytes(256, rng);
    EXPECT_NEAR(m->forward(x.data(), y.data(), 2, 128, nullptr), std::log(256.0), 0.3) << c.arch;
  }
}

TEST(TransformerModel, OverfitsAShortText) {
  std::string text =
      "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
      "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light";
  TrainConfig t;
  t.steps = 100;
  t.lr = 1e-2;
  t.warmup = 10;
  t.weight_decay = 0;
  ModelConfig c{"transformer", 32, 2, 1};
  c.head_dim = 16;
  auto m = make_model<float>(c, 1);
  float loss = bytelm::testing::overfit_loss(*m, text, t);
  EXPECT_LT(loss / std::log(2.0), 0.2) << "bits per byte after " << t.steps << " steps";
}

TEST(TransformerModel, ConfigErrors) {
  auto message = [](ModelConfig c) {
    try {
      param_count(c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ModelConfig c = tiny_transformer();
  c.head_dim = 3;
  EXPECT_EQ(message(c), "head_dim must be even and >= 2 (RoPE rotates pairs of channels), got 3");
  c = tiny_transformer();
  c.head_dim = 6;
  EXPECT_EQ(message(c), "d must be a multiple of head_dim: d 8, head_dim 6");
  c = tiny_transformer();
  c.patch = 2;
  EXPECT_EQ(message(c), "the transformer family reads every byte: patch must be 1, got 2");
  c = tiny_transformer();
  c.smear = 2;
  EXPECT_EQ(message(c), "smear must be 0 or 1, got 2");
  c = tiny_transformer();
  c.hybrid_layers = "aa";
  EXPECT_EQ(message(c), "hybrid_layers applies to the hybrid family only");
  c = tiny_hybrid("sas", 4);
  c.hybrid_layers = "sa";
  EXPECT_EQ(
      message(c),
      "hybrid_layers must give one letter a layer ('a' attention, 's' long convolution): 'sa' has 2 for 3 layers");
  c.hybrid_layers = "sxa";
  EXPECT_EQ(message(c), "hybrid_layers takes the letters a (attention) and s (long convolution), got 'sxa'");
  c = tiny_transformer();
  c.softcap = -1;
  EXPECT_EQ(message(c), "softcap must be >= 0 (0 turns it off)");
  // the keys as flags and JSON: a list of letters is text, a cap a number
  RunConfig r;
  set_config_key(r, "hybrid_layers", "ssaa", "--hybrid-layers");
  set_config_key(r, "softcap", "15", "--softcap");
  EXPECT_EQ(r.model.hybrid_layers, "ssaa");
  EXPECT_EQ(r.model.softcap, 15);
  EXPECT_THROW(set_config_key(r, "smear", "yes", "--smear"), Error);
}
