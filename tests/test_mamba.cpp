// The mamba family: its two layers (causal conv, selective scan) against finite differences and naive
// loops, and the model as a whole: gradients, causality, streaming, training, checkpoints, the CLI.
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
#include "cli_fixture.h"
#include "model_testing.h"
#include "core/error.h"
#include "gradcheck.h"
#include "layers/causal_conv.h"
#include "layers/selective_scan.h"
#include "models/model.h"
#include "stream_parity.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#ifdef BYTELM_WITH_CUDA
#include "core/cuda_check.h"
#endif

using namespace bytelm;
using namespace bytelm::testing;
namespace fs = std::filesystem;
using V = std::vector<double>;

static ModelConfig mamba(int d, int layers) { return {"mamba", d, layers, 1}; }

TEST(MambaLayers, CausalConvGradient) {
  Rng rng(1);
  for (int K : {2, 4}) {
    int B = 2, T = 7, C = 5;
    V x = random_vector(B * T * C, rng), w = random_vector(C * K, rng), bias = random_vector(C, rng);
    V R = random_vector(B * T * C, rng), y(B * T * C);
    auto loss = [&] {
      causal_conv_forward(y.data(), x.data(), w.data(), bias.data(), B, T, C, K, (double*)nullptr);
      return dot(y, R);
    };
    V dx(B * T * C, 7.0), dw(C * K, 0.0), dbias(C, 0.0);
    causal_conv_backward(dx.data(), dw.data(), dbias.data(), R.data(), x.data(), w.data(), bias.data(), B, T, C, K);
    std::string k = " K=" + std::to_string(K);
    expect_gradient(("dx" + k).c_str(), x, dx, loss);
    expect_gradient(("dw" + k).c_str(), w, dw, loss);
    expect_gradient(("dbias" + k).c_str(), bias, dbias, loss);
  }
}

// Feeding a sequence in pieces (single steps, and pieces shorter than the state) with the state carried
// gives the whole-sequence forward.
TEST(MambaLayers, CausalConvStateCarriesAcrossPieces) {
  Rng rng(2);
  int B = 2, T = 11, C = 3, K = 4;
  V x = random_vector(B * T * C, rng), w = random_vector(C * K, rng), bias = random_vector(C, rng);
  V full(B * T * C);
  causal_conv_forward(full.data(), x.data(), w.data(), bias.data(), B, T, C, K, (double*)nullptr);
  for (int piece : {1, 2, 5}) {
    V state(B * (K - 1) * C, 0.0), part(B * T * C);
    for (int b = 0; b < B; b++)
      for (int t0 = 0; t0 < T; t0 += piece) {
        int n = std::min(piece, T - t0);
        size_t row = (size_t)b * T + t0;
        causal_conv_forward(part.data() + row * C, x.data() + row * C, w.data(), bias.data(), 1, n, C, K,
                            state.data() + b * (K - 1) * C);
      }
    for (int i = 0; i < B * T * C; i++) EXPECT_NEAR(part[i], full[i], 1e-12) << "piece " << piece << " at " << i;
  }
}

// The scan's inputs and weights, random around the values a model meets.
struct ScanCase {
  int B, T, Di, N;
  V x, dt, BC, z, A_log, D, dt_bias;
  ScanCase(int B_, int T_, int Di_, int N_, Rng& rng) : B(B_), T(T_), Di(Di_), N(N_) {
    size_t M = (size_t)B * T;
    x = random_vector(M * Di, rng);
    dt = random_vector(M * Di, rng);
    BC = random_vector(M * 2 * N, rng);
    z = random_vector(M * Di, rng);
    A_log = random_vector(Di * N, rng, 0.5);
    D = random_vector(Di, rng);
    dt_bias = random_vector(Di, rng);
  }
  ScanInputs<double> inputs() const { return {x.data(), dt.data(), BC.data(), z.data()}; }
  SelectiveScanWeights<double> weights() const { return {A_log.data(), D.data(), dt_bias.data()}; }
};

TEST(MambaLayers, SelectiveScanGradient) {
  Rng rng(3);
  // The backward recomputes T = 10 in chunks of 4, 4 and 2, T = 9 in three of 3, T = 1 in one of 1.
  for (int T : {10, 9, 1}) {
    ScanCase s(2, T, 5, 3, rng);
    size_t M = (size_t)s.B * T;
    V R = random_vector(M * s.Di, rng), y(M * s.Di);
    auto loss = [&] {
      selective_scan_forward(y.data(), s.inputs(), s.weights(), s.B, T, s.Di, s.N, (double*)nullptr);
      return dot(y, R);
    };
    V dx(M * s.Di), ddt(M * s.Di), dBC(M * 2 * s.N), dz(M * s.Di);
    V dA_log(s.Di * s.N, 0.0), dD(s.Di, 0.0), ddt_bias(s.Di, 0.0);
    selective_scan_backward(ScanInputGrads<double>{dx.data(), ddt.data(), dBC.data(), dz.data()},
                            SelectiveScanGrads<double>{dA_log.data(), dD.data(), ddt_bias.data()}, R.data(), s.inputs(),
                            s.weights(), s.B, T, s.Di, s.N);
    std::string t = " T=" + std::to_string(T);
    expect_gradient(("dx" + t).c_str(), s.x, dx, loss);
    expect_gradient(("ddt" + t).c_str(), s.dt, ddt, loss);
    expect_gradient(("dBC" + t).c_str(), s.BC, dBC, loss);
    expect_gradient(("dz" + t).c_str(), s.z, dz, loss);
    expect_gradient(("dA_log" + t).c_str(), s.A_log, dA_log, loss);
    expect_gradient(("dD" + t).c_str(), s.D, dD, loss);
    expect_gradient(("ddt_bias" + t).c_str(), s.dt_bias, ddt_bias, loss);
  }
}

TEST(MambaLayers, SelectiveScanStateCarriesAcrossPieces) {
  Rng rng(4);
  ScanCase s(1, 9, 4, 3, rng);
  int k = 4;
  V full(9 * 4), part(9 * 4), state(4 * 3, 0.0);
  selective_scan_forward(full.data(), s.inputs(), s.weights(), 1, 9, 4, 3, (double*)nullptr);
  ScanInputs<double> in = s.inputs();
  selective_scan_forward(part.data(), in, s.weights(), 1, k, 4, 3, state.data());
  ScanInputs<double> rest{in.x + k * 4, in.dt + k * 4, in.BC + k * 2 * 3, in.z + k * 4};
  selective_scan_forward(part.data() + k * 4, rest, s.weights(), 1, 9 - k, 4, 3, state.data());
  for (size_t i = 0; i < full.size(); i++) EXPECT_NEAR(part[i], full[i], 1e-12) << i;
}

// 5000 steps in fp32, with step sizes from tiny to large (decays from ~1 to ~0), stay finite and match
// the recurrence written out in fp64.
TEST(MambaLayers, LongScanMatchesNaiveDoubleLoop) {
  Rng rng(5);
  int T = 5000, Di = 6, N = 16;
  ScanCase s(1, T, Di, N, rng);
  for (int n = 0; n < Di * N; n++) s.A_log[n] = std::log(double(n % N + 1));
  for (int i = 0; i < Di; i++) s.dt_bias[i] = -7.0 + 2.5 * i;  // softplus from ~1e-3 to ~5.5
  auto f = [](const V& v) { return std::vector<float>(v.begin(), v.end()); };
  std::vector<float> x = f(s.x), dt = f(s.dt), BC = f(s.BC), z = f(s.z), A_log = f(s.A_log), D = f(s.D),
                     dt_bias = f(s.dt_bias), y((size_t)T * Di);
  selective_scan_forward(y.data(), ScanInputs<float>{x.data(), dt.data(), BC.data(), z.data()},
                         SelectiveScanWeights<float>{A_log.data(), D.data(), dt_bias.data()}, 1, T, Di, N,
                         (float*)nullptr);
  V h(Di * N, 0.0);
  double worst = 0;
  for (int t = 0; t < T; t++)
    for (int i = 0; i < Di; i++) {
      double delta = std::log1p(std::exp(s.dt[t * Di + i] + s.dt_bias[i])), out = 0;
      for (int n = 0; n < N; n++) {
        double& hn = h[i * N + n];
        hn = std::exp(-delta * std::exp(s.A_log[i * N + n])) * hn + delta * s.BC[t * 2 * N + n] * s.x[t * Di + i];
        out += s.BC[t * 2 * N + N + n] * hn;
      }
      double zt = s.z[t * Di + i];
      double want = (out + s.D[i] * s.x[t * Di + i]) * zt / (1 + std::exp(-zt));
      float got = y[(size_t)t * Di + i];
      ASSERT_TRUE(std::isfinite(got)) << "t=" << t << " i=" << i;
      worst = std::max(worst, std::fabs(got - want) / std::max(1.0, std::fabs(want)));
    }
  EXPECT_LT(worst, 1e-4);
}

TEST(MambaModel, PresetParameterCounts) {
  EXPECT_EQ(param_count(preset("mamba-1m").model), 966912);
  EXPECT_EQ(param_count(preset("mamba-10m").model), 9708032);
  EXPECT_EQ(param_count(preset("mamba-100m").model), 98280960);
  for (ModelConfig c : {mamba(24, 3), preset("mamba-1m").model}) {
    auto m = make_model<float>(c, 1);
    EXPECT_EQ(m->param_count(), param_count(c));
  }
  EXPECT_THROW(param_count({"mamba", 64, 2, 2}), Error);  // no patching in this family
}

TEST(MambaModel, WholeModelGradientDouble) {
  // d = 7: inner width 14, dt_rank 1; odd depth and length
  auto m = make_model<double>(mamba(7, 3), 7);
  Rng rng(11);
  expect_model_gradients(*m, 2, 7, rng, "");
}

TEST(MambaModel, CausalityBitIdentical) {
  auto m = make_model<float>(mamba(16, 2), 3);
  Rng rng(5);
  for (int T : {1, 7, 13, 33}) expect_causal(*m, T, rng, "T=" + std::to_string(T));
}

TEST(MambaModel, StreamMatchesParallelForward) {
  auto m = make_model<float>(mamba(32, 3), 9);
  for (int B : {1, 3}) {
    Rng rng(13);
    EXPECT_LT(stream_vs_forward_error(*m, B, 37, rng), 1e-4) << "B=" << B;
  }
}

TEST(MambaModel, FirstLossNearUniform) {
  auto m = make_model<float>(mamba(64, 2), 1);
  Rng rng(2);
  auto x = random_bytes(512, rng), y = random_bytes(512, rng);
  EXPECT_NEAR(m->forward(x.data(), y.data(), 2, 256, nullptr), std::log(256.0), 0.3);
}

TEST(MambaModel, LongSequenceStaysFinite) {
  auto m = make_model<float>(mamba(8, 2), 4);
  Rng rng(6);
  int T = 5000;
  auto x = random_bytes(T, rng), y = random_bytes(T, rng);
  std::vector<float> row(T);
  float loss = m->forward(x.data(), y.data(), 1, T, row.data());
  EXPECT_TRUE(std::isfinite(loss));
  for (int t = 0; t < T; t++) ASSERT_TRUE(std::isfinite(row[t])) << t;
  m->backward();
  for (float g : m->grads()) ASSERT_TRUE(std::isfinite(g));
}

TEST(MambaModel, OverfitsAShortText) {
  std::string text =
      "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
      "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light";
  TrainConfig t;
  t.steps = 150;
  t.lr = 1e-2;
  t.warmup = 20;
  t.weight_decay = 0;
  auto m = make_model<float>(mamba(32, 2), 1);
  float loss = bytelm::testing::overfit_loss(*m, text, t);
  EXPECT_LT(loss / std::log(2.0), 0.05) << "bits per byte after " << t.steps << " steps";
}

TEST(MambaModel, CheckpointRoundTrip) {
  fs::path dir = fs::temp_directory_path() / ("bytelm_test_mamba_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  RunConfig cfg;
  cfg.model = mamba(16, 3);
  cfg.train.seq = 77;
  auto m = make_model<float>(cfg.model, 5);
  AdamW opt(m->params().size());
  Rng rng(3);
  for_each_param_element(*m, [&](size_t i) { opt.m[i] = float(rng.normal()), opt.v[i] = float(rng.uniform()); });
  std::string path = (dir / "c.safetensors").string();
  save_checkpoint(path, *m, opt, cfg, 42);
  LoadedCheckpoint ck = load_checkpoint(path, true);
  EXPECT_EQ(ck.step, 42);
  EXPECT_EQ(ck.cfg.model.arch, "mamba");
  EXPECT_EQ(ck.cfg.model.layers, 3);
  EXPECT_EQ(ck.model->params(), m->params());
  EXPECT_EQ(ck.opt->m, opt.m);
  EXPECT_EQ(ck.opt->v, opt.v);
  auto x = random_bytes(40, rng), y = random_bytes(40, rng);
  EXPECT_EQ(m->forward(x.data(), y.data(), 2, 20, nullptr), ck.model->forward(x.data(), y.data(), 2, 20, nullptr));
  fs::remove_all(dir);
}

// The commands as a user meets them (tests/cli_fixture.h).
using MambaCli = Cli;

TEST_F(MambaCli, TrainEvalScoreGenerate) {
  std::string out = (dir / "run").string(), data = std::string(BYTELM_SOURCE_DIR) + "/data/tinyshakespeare.txt";
  std::string small = "--d 32 --layers 2 --steps 20 --batch 4 --seq 64 --eval-bytes 2048 --quiet";
  Result t = run("train --preset mamba-1m " + small + " --data " + data + " --out " + out);
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("\"step\":20"), std::string::npos) << t.out;
  std::string probe = file("probe.txt", "ROMEO: the lazy dog.");
  Result e = run("eval --ckpt " + out + " --data " + probe);
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("\"bytes\":20"), std::string::npos) << e.out;
  Result s = run("score --ckpt " + out + " --input " + probe);
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(std::count(s.out.begin(), s.out.end(), '\n'), 20);
  Result g = run("generate --ckpt " + out + " --prompt 'ROMEO:' --bytes 40 --seed 3");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.out.size(), 46u);
  EXPECT_EQ(g.out.substr(0, 6), "ROMEO:");
  Result info = run("info --preset mamba-10m");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("\"params\":9708032"), std::string::npos) << info.out;
  // on the GPU the same checkpoint evaluates; a build or machine without one says so in one line
  Result cuda = run("eval --device cuda --ckpt " + out + " --data " + probe);
  bool gpu = false;
#ifdef BYTELM_WITH_CUDA
  gpu = cuda_available();
#endif
  if (gpu) {
    ASSERT_EQ(cuda.code, 0) << cuda.err;
    EXPECT_NE(cuda.out.find("\"bytes\":20"), std::string::npos) << cuda.out;
  } else {
    EXPECT_NE(cuda.code, 0);
    EXPECT_EQ(std::count(cuda.err.begin(), cuda.err.end(), '\n'), 1) << cuda.err;
  }
}
