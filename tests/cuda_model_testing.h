// The whole-model checks every family's CUDA tests run (test_cuda_model, _mamba, _transformer, _patching): the
// GPU model against the CPU reference, the fast paths (TF32, bf16) against fp32, a training curve against the
// CPU's, and graph-replayed steps against direct ones. Each takes models its test built (families initialise and
// perturb their parameters their own way) and checks them with the same bounds.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/rng.h"
#include "model_testing.h"
#include "models/model.h"
#include "train/adamw.h"
#include "train/train_step.h"

#ifdef BYTELM_WITH_CUDA
#include "core/device_buffer.h"  // device_allocations
#endif

namespace bytelm::testing {

// Moves every parameter off its init by N(0, 0.05) (norm weights, D, gates, queries: generic) and pushes them.
inline void perturb_params(Model<float>& m, uint64_t seed) {
  Rng rng(seed);
  for (float& w : m.params()) w += 0.05f * float(rng.normal());
  m.push_params();
}

// cpu and gpu (fp32) hold the same parameters: the loss (and its auxiliary part), each row's loss and every
// gradient tensor agree to fp32 accuracy on random bytes, and a second backward on the GPU gives the same bits.
inline void expect_gpu_matches_cpu(Model<float>& cpu, Model<float>& gpu, int B, int T, uint64_t seed,
                                   const std::string& what) {
  Rng rng(seed);
  auto x = random_bytes((size_t)B * T, rng), y = random_bytes((size_t)B * T, rng);
  std::vector<float> rows_cpu((size_t)B * T), rows_gpu((size_t)B * T);
  cpu.zero_grads();
  gpu.zero_grads();
  float lc = cpu.forward(x.data(), y.data(), B, T, rows_cpu.data());
  float lg = gpu.forward(x.data(), y.data(), B, T, rows_gpu.data());
  EXPECT_NEAR(lg, lc, 1e-5 * std::fabs(lc)) << what;
  EXPECT_NEAR(gpu.last_extra_loss(), cpu.last_extra_loss(), 1e-5 * std::fabs(cpu.last_extra_loss())) << what;
  EXPECT_LT(rel_err(rows_gpu.data(), rows_cpu.data(), rows_cpu.size()), 1e-5) << what;
  cpu.backward();
  gpu.backward();
  gpu.pull_grads();
  for (const ParamInfo& p : cpu.param_info()) {
    double e = rel_err(gpu.grads().data() + p.offset, cpu.grads().data() + p.offset, p.size);
    ::testing::Test::RecordProperty(what + " " + p.name, std::to_string(e));
    EXPECT_LT(e, 1e-4) << what << " " << p.name;
  }
  std::vector<float> first = gpu.grads();
  gpu.zero_grads();
  gpu.forward(x.data(), y.data(), B, T, nullptr);
  gpu.backward();
  gpu.pull_grads();
  EXPECT_TRUE(gpu.grads() == first) << what << ": the GPU backward is not bit-reproducible";
}

// fast (TF32 or bf16 products and storage, `device`) and exact (fp32) hold the same parameters: the loss within
// tol (1e-3 for TF32's 10 mantissa bits, 1e-2 for bf16's 8), every gradient tensor within 10 tol, and the
// gradients not all equal (a switch that did nothing would pass the bounds).
inline void expect_close_to_fp32(Model<float>& exact, Model<float>& fast, const std::string& device, int B, int T,
                                 const std::string& what) {
  Rng rng(8);
  auto x = random_bytes((size_t)B * T, rng), y = random_bytes((size_t)B * T, rng);
  exact.zero_grads();
  fast.zero_grads();
  float le = exact.forward(x.data(), y.data(), B, T, nullptr);
  float lf = fast.forward(x.data(), y.data(), B, T, nullptr);
  double tol = device == "cuda" ? 1e-2 : 1e-3;
  EXPECT_NEAR(lf, le, tol * le) << what << " " << device;
  exact.backward();
  fast.backward();
  exact.pull_grads();
  fast.pull_grads();
  for (const ParamInfo& p : exact.param_info()) {
    double e = rel_err(fast.grads().data() + p.offset, exact.grads().data() + p.offset, p.size);
    ::testing::Test::RecordProperty(what + " " + device + " " + p.name, std::to_string(e));
    EXPECT_LT(e, 10 * tol) << what << " " << device << " " << p.name;
  }
  EXPECT_GT(rel_err(fast.grads().data(), exact.grads().data(), exact.grads().size()), 0.0)
      << what << " " << device << " should differ from fp32 somewhere, or the switch does nothing";
}

// `steps` AdamW steps of gpu (fp32) and cpu from the same parameters on the same text batches (4 x 64): the
// largest relative loss gap over the run is under 2e-3 and the curve falls by more than a nat. The optimizers
// are the caller's (so it can checkpoint what was trained).
inline void expect_training_follows_cpu(Model<float>& cpu, Model<float>& gpu, AdamW& oc, AdamW& og, int steps,
                                        const std::string& what) {
  TrainConfig t;
  t.steps = steps;
  t.lr = 3e-3;
  Rng rng(4);
  const int B = 4, T = 64;
  double worst = 0;
  float first = 0, last = 0;
  std::vector<uint8_t> x, y;
  for (int s = 0; s < t.steps; s++) {
    text_batch(rng, B, T, x, y);
    cpu.zero_grads();
    gpu.zero_grads();
    float lc = cpu.forward(x.data(), y.data(), B, T, nullptr);
    float lg = gpu.forward(x.data(), y.data(), B, T, nullptr);
    worst = std::max(worst, std::fabs(double(lg) - lc) / lc);
    if (s == 0) first = lc;
    last = lc;
    cpu.backward();
    gpu.backward();
    oc.step(cpu, t, s, lr_at(t, s));
    og.step(gpu, t, s, lr_at(t, s));
  }
  ::testing::Test::RecordProperty(what + " worst_gap", std::to_string(worst));
  EXPECT_LT(last, first - 1.0) << what << ": the curve should fall";
  EXPECT_LT(worst, 2e-3) << what << ": largest relative loss gap between GPU and CPU over " << steps << " steps";
}

// TrainStep records a GPU step into a CUDA graph and replays it: replayed and direct (bf16, the same parameters)
// give the same losses, norms and parameters, to the bit, over 6 steps, also across a reallocation (a larger
// forward through both before step 2, as an evaluation may do: new buffer addresses) and a change of batch shape
// (step 5), each of which must make it record again, and after a smaller forward (before step 4: an evaluation
// at fewer rows, no reallocation) that the replay must not take its loss from.
inline void expect_graph_steps_match_direct(Model<float>& replayed, Model<float>& direct, int T,
                                            const std::string& what) {
  TrainConfig t;
  t.steps = 6;
  t.lr = 3e-3;
  AdamW o_replayed(replayed.params().size()), o_direct(direct.params().size());
  TrainStep stepper(replayed, o_replayed);
  Rng rng(6);
  for (int s = 0; s < t.steps; s++) {
    int B = s < 5 ? 4 : 3;
    auto x = random_bytes((size_t)B * T, rng), y = random_bytes((size_t)B * T, rng);
    if (s == 2 || s == 4) {
      int Be = s == 2 ? 8 : 1;
      auto xe = random_bytes((size_t)Be * T, rng), ye = random_bytes((size_t)Be * T, rng);
#ifdef BYTELM_WITH_CUDA
      size_t allocations = device_allocations();
#endif
      float le_replayed = replayed.forward(xe.data(), ye.data(), Be, T, nullptr);
      EXPECT_EQ(le_replayed, direct.forward(xe.data(), ye.data(), Be, T, nullptr)) << what << " step " << s;
#ifdef BYTELM_WITH_CUDA
      if (s == 4) {  // else the step records again and the replay after a smaller forward goes unchecked
        EXPECT_EQ(device_allocations(), allocations) << what << ": the smaller forward reallocated";
      }
#endif
    }
    StepResult r = stepper.run(x.data(), y.data(), B, T, t, s, lr_at(t, s));
    direct.zero_grads();
    float loss = direct.forward(x.data(), y.data(), B, T, nullptr);
    direct.backward();
    double norm = o_direct.step(direct, t, s, lr_at(t, s));
    EXPECT_EQ(r.loss, loss) << what << " step " << s;
    EXPECT_EQ(r.extra_loss, direct.last_extra_loss()) << what << " step " << s;
    EXPECT_EQ(r.grad_norm, norm) << what << " step " << s;
  }
  replayed.pull_params();
  direct.pull_params();
  EXPECT_TRUE(replayed.params() == direct.params()) << what;
}

}  // namespace bytelm::testing
