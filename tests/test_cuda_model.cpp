// The ssm model on the GPU against the same model on the CPU, in fp32: loss,
// every gradient, causality, and a 50-step training curve. Suite CudaModel
// carries the ctest label `cuda` and skips without a CUDA device or build.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "causality.h"
#include "cuda_model_testing.h"
#include "model_testing.h"
#include "stream_parity.h"
#include "core/rng.h"
#include "models/model.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/train_step.h"

using namespace bytelm;
using namespace bytelm::testing;

TEST(CudaModel, LossAndGradientsMatchCpu) {
  REQUIRE_GPU();
  for (int P : {1, 2, 3}) {
    ModelConfig c{"ssm", 48, 2, P};
    auto cpu = make_model_on("cpu", c, 7);
    auto gpu = make_model_on("cuda-fp32", c, 7);
    perturb_params(*cpu, 3);
    gpu->params() = cpu->params();
    gpu->push_params();
    expect_gpu_matches_cpu(*cpu, *gpu, 3, 131, 5, "P=" + std::to_string(P));
  }
}

// Attention pooling on the GPU: loss, every row and every gradient (the query's included) as on the CPU, in fp32;
// causal; and its streams match the parallel forward.
TEST(CudaModel, AttnPoolingMatchesCpu) {
  REQUIRE_GPU();
  for (int P : {2, 3}) {
    ModelConfig c{"ssm", 40, 2, P, "attn"};
    std::string what = "attn P=" + std::to_string(P);
    auto cpu = make_model_on("cpu", c, 17);
    auto gpu = make_model_on("cuda-fp32", c, 17);
    perturb_params(*cpu, 4);  // the query off zero: weights not uniform
    gpu->params() = cpu->params();
    gpu->push_params();
    expect_gpu_matches_cpu(*cpu, *gpu, 3, 67, 5, what);
    Rng rng(4);
    bytelm::testing::expect_causal(*gpu, 23, rng, what);
    for (const char* device : {"cuda-fp32", "cuda"}) {
      auto m = make_model_on(device, c, 9);
      double tol = std::string(device) == "cuda" ? 2e-2 : 1e-4;
      EXPECT_LT(bytelm::testing::stream_vs_forward_error(*m, 5, 37, rng), tol) << device << " " << what;
    }
  }
}

TEST(CudaModel, CausalOnGpu) {
  REQUIRE_GPU();
  auto m = make_model_on("cuda-fp32", {"ssm", 32, 2, 2}, 5);
  Rng rng(9);
  bytelm::testing::expect_causal(*m, 33, rng, "cuda P=2");
}

TEST(CudaModel, FiftyTrainingStepsMatchCpu) {
  REQUIRE_GPU();
  ModelConfig c{"ssm", 64, 2, 2};
  auto cpu = make_model_on("cpu", c, 11);
  auto gpu = make_model_on("cuda-fp32", c, 11);
  AdamW oc(cpu->params().size()), og(gpu->params().size());
  expect_training_follows_cpu(*cpu, *gpu, oc, og, 50, "ssm");
  // a GPU run's checkpoint loads on the CPU as the same function
  auto dir = std::filesystem::temp_directory_path() / ("bytelm_cuda_ck_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  RunConfig rc;
  rc.model = c;
  save_checkpoint((dir / "c.safetensors").string(), *gpu, og, rc, 50);
  LoadedCheckpoint ck = load_checkpoint((dir / "c.safetensors").string(), true, "cpu");
  EXPECT_EQ(ck.model->params(), gpu->params());
  EXPECT_EQ(ck.opt->m, og.m);
  std::filesystem::remove_all(dir);
}

// Patching local on the GPU: loss and every gradient against the CPU in fp32, with the local scans as one run
// (P divides T) and split by row (it does not), and more scans than a grid has rows (B T / P > 65535, which the
// short scan's threads take in groups); causality; streams (restarting the local state at each patch) against the
// parallel forward.
TEST(CudaModel, PatchingLocalMatchesCpu) {
  REQUIRE_GPU();
  struct Case { int P, B, T, d; };
  for (Case k : {Case{1, 3, 131, 48}, Case{2, 3, 131, 48}, Case{3, 3, 131, 48}, Case{3, 2, 132, 48},
                 Case{1, 2, 40000, 16}}) {
    ModelConfig c{"ssm", k.d, 2, k.P, "local"};
    std::string what = "P=" + std::to_string(k.P) + " B=" + std::to_string(k.B) + " T=" + std::to_string(k.T);
    auto cpu = make_model_on("cpu", c, 7);
    auto gpu = make_model_on("cuda-fp32", c, 7);
    perturb_params(*cpu, 3);
    gpu->params() = cpu->params();
    gpu->push_params();
    expect_gpu_matches_cpu(*cpu, *gpu, k.B, k.T, 5, what);
  }
  for (int P : {2, 3}) {
    auto m = make_model_on("cuda-fp32", {"ssm", 32, 2, P, "local"}, 5);
    Rng rng(9);
    bytelm::testing::expect_causal(*m, 33, rng, "cuda local P=" + std::to_string(P));
  }
  for (const char* device : {"cuda-fp32", "cuda"})
    for (int P : {1, 2, 4}) {
      auto m = make_model_on(device, {"ssm", 64, 3, P, "local"}, 9);
      Rng rng(14);
      double tol = std::string(device) == "cuda" ? 2e-2 : 1e-4;
      EXPECT_LT(bytelm::testing::stream_vs_forward_error(*m, 5, 37, rng), tol) << device << " local P=" << P;
    }
}

// The fast paths (TF32 or bf16 inputs to the matrix products) compute the same function to their accuracy.
TEST(CudaModel, FastPathsCloseToFp32) {
  REQUIRE_GPU();
  for (const char* device : {"cuda-tf32", "cuda"}) {
    ModelConfig c{"ssm", 64, 2, 2};
    auto exact = make_model_on("cuda-fp32", c, 3);
    auto fast = make_model_on(device, c, 3);
    expect_close_to_fp32(*exact, *fast, device, 4, 256, "ssm");
  }
}

// The bf16 model's products read a bf16 copy of its parameters, which AdamW rewrites in its own pass: after
// training, that model and a fresh one given the same fp32 parameters (copy made by push_params) must compute
// the same loss to the bit, and bf16 training must follow the fp32 curve.
TEST(CudaModel, Bf16TrainingKeepsItsWeightCopyAndTheCurve) {
  REQUIRE_GPU();
  ModelConfig c{"ssm", 64, 2, 2};
  TrainConfig t;
  t.steps = 30;
  t.lr = 3e-3;
  auto bf = make_model_on("cuda", c, 11), exact = make_model_on("cuda-fp32", c, 11);
  AdamW ob(bf->params().size()), oe(exact->params().size());
  int B = 4, T = 64;
  std::vector<uint8_t> x, y;
  Rng rng(5);
  double worst = 0;
  for (int s = 0; s < t.steps; s++) {
    text_batch(rng, B, T, x, y);
    bf->zero_grads();
    exact->zero_grads();
    float lb = bf->forward(x.data(), y.data(), B, T, nullptr);
    float le = exact->forward(x.data(), y.data(), B, T, nullptr);
    worst = std::max(worst, std::fabs(double(lb) - le) / le);
    bf->backward();
    exact->backward();
    ob.step(*bf, t, s, lr_at(t, s));
    oe.step(*exact, t, s, lr_at(t, s));
  }
  EXPECT_LT(worst, 2e-2) << "largest relative loss gap between bf16 and fp32 training over 30 steps";
  bf->pull_params();
  auto fresh = make_model_on("cuda", c, 99);
  fresh->params() = bf->params();
  fresh->push_params();
  float l_trained = bf->forward(x.data(), y.data(), B, T, nullptr);
  float l_fresh = fresh->forward(x.data(), y.data(), B, T, nullptr);
  EXPECT_EQ(l_trained, l_fresh) << "the bf16 weight copy is stale after the optimizer step";
}

// TrainStep's graph replay equals the direct calls to the bit (cuda_model_testing.h), across reshapes and
// reallocations.
TEST(CudaModel, GraphStepsMatchDirectSteps) {
  REQUIRE_GPU();
  ModelConfig c{"ssm", 64, 2, 2};
  auto replayed = make_model_on("cuda", c, 13), direct = make_model_on("cuda", c, 13);
  expect_graph_steps_match_direct(*replayed, *direct, 64, "ssm");
}

// Streams on the GPU (B of them stepped together, the SSM state kept in fp32 between patches) give the GPU's
// parallel forward: to fp32 accuracy in fp32, within bf16 rounding in bf16 (both store u and h as bf16 between
// kernels, and the products differ in batch shape).
TEST(CudaModel, StreamsMatchParallelForward) {
  REQUIRE_GPU();
  for (const char* device : {"cuda-fp32", "cuda"})
    for (int P : {1, 2, 4}) {
      auto m = make_model_on(device, {"ssm", 64, 3, P}, 9);
      Rng rng(14);
      double tol = std::string(device) == "cuda" ? 2e-2 : 1e-4;
      double e = bytelm::testing::stream_vs_forward_error(*m, 5, 37, rng);
      ::testing::Test::RecordProperty(std::string(device) + " P=" + std::to_string(P), std::to_string(e));
      EXPECT_LT(e, tol) << device << " P=" << P;
    }
}

// A fresh model's first forward equals every later one at a size where buffer zeroing takes long enough to
// race the first kernels (it did, when the zeroing on the default stream was not waited for).
TEST(CudaModel, FirstForwardEqualsTheNext) {
  REQUIRE_GPU();
  auto m = make_model_on("cuda", {"ssm", 256, 4, 2}, 3);
  Rng rng(15);
  int B = 32, T = 2048;
  auto x = random_bytes(B * T, rng), y = random_bytes(B * T, rng);
  std::vector<float> first(B * T), second(B * T);
  m->forward(x.data(), y.data(), B, T, first.data());
  m->forward(x.data(), y.data(), B, T, second.data());
  EXPECT_TRUE(first == second);
}

TEST(CudaModel, NoGpuGivesAClearError) {
  if (have_gpu()) {
    GTEST_SKIP() << "a GPU is present";
  }
#ifdef BYTELM_WITH_CUDA
  try {
    make_model_on("cuda", {"ssm", 16, 1, 2}, 1);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("no usable CUDA device"), std::string::npos) << e.what();
  }
#else
  EXPECT_THROW(make_model_on("cuda", {"ssm", 16, 1, 2}, 1), std::exception);
#endif
}
