// What the whole-model tests share: random and text batches, a norm-wise error over raw arrays, learning a short
// text by heart, and skipping where there is no GPU (or no CUDA build).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "models/model.h"
#include "train/adamw.h"
#ifdef BYTELM_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace bytelm::testing {

inline bool have_gpu() {
#ifdef BYTELM_WITH_CUDA
  return cuda_available();
#else
  return false;
#endif
}

#define REQUIRE_GPU()                                           \
  if (!bytelm::testing::have_gpu()) {                           \
    GTEST_SKIP() << "no CUDA device (or a build without CUDA)"; \
  }

inline std::vector<uint8_t> random_bytes(size_t n, Rng& rng) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng.next_u64());
  return v;
}

// B windows of T bytes of a pangram text at random offsets (x), and the bytes after them (y).
inline void text_batch(Rng& rng, int B, int T, std::vector<uint8_t>& x, std::vector<uint8_t>& y) {
  static const std::string text = "the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. ";
  x.resize(B * T);
  y.resize(B * T);
  for (int b = 0; b < B; b++) {
    size_t o = rng.next_u64() % (text.size() - 1);
    for (int i = 0; i < T; i++) {
      x[b * T + i] = (uint8_t)text[(o + i) % text.size()];
      y[b * T + i] = (uint8_t)text[(o + i + 1) % text.size()];
    }
  }
}

// Every tensor of the flat parameter buffer starts at a multiple of kParamAlign elements (the GPU's products need
// aligned weights), the gaps between them hold zeros, and no two tensors overlap.
inline void expect_aligned_params(const Model<float>& m) {
  size_t end = 0;
  for (const ParamInfo& p : m.param_info()) {
    EXPECT_EQ(p.offset % kParamAlign, 0u) << p.name << " at " << p.offset;
    EXPECT_GE(p.offset, end) << p.name << " overlaps the tensor before it";
    for (size_t i = end; i < std::min(p.offset, m.params().size()); i++)
      EXPECT_EQ(m.params()[i], 0.f) << "gap before " << p.name;
    end = p.offset + p.size;
  }
  EXPECT_LE(end, m.params().size());
}

// f(i) for the index i of every element of the model's tensors in the flat buffer, skipping the alignment gaps
// between them (zeros that checkpoints do not save).
template <class F>
void for_each_param_element(const Model<float>& m, F f) {
  for (const ParamInfo& p : m.param_info())
    for (size_t i = p.offset; i < p.offset + p.size; i++) f(i);
}

// ||a - b|| / ||b|| over n elements, in double.
inline double rel_err(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// The loss (nats) of the last of t.steps AdamW steps on one window of `text`, each byte predicting the next: a
// model that cannot drive it near zero cannot learn.
inline float overfit_loss(Model<float>& m, const std::string& text, const TrainConfig& t) {
  AdamW opt(m.params().size());
  const uint8_t* b = (const uint8_t*)text.data();
  int T = (int)text.size() - 1;
  float loss = 0;
  for (int s = 0; s < t.steps; s++) {
    std::fill(m.grads().begin(), m.grads().end(), 0.f);
    loss = m.forward(b, b + 1, 1, T, nullptr);
    m.backward();
    opt.step(m, t, s, lr_at(t, s));
  }
  return loss;
}

}  // namespace bytelm::testing
