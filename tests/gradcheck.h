// Finite-difference gradient checking in double precision.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "models/model.h"

namespace bytelm::testing {

inline std::vector<double> random_vector(size_t n, Rng& rng, double scale = 1.0) {
  std::vector<double> v(n);
  for (double& x : v) x = rng.normal() * scale;
  return v;
}

// Compares `analytic` with central differences of loss() with respect to `x`
// (perturbed in place, restored after). Checks every entry, or a strided
// sample of at most max_checks entries. Error relative to max(|numeric|, 1e-3 scale).
inline void expect_gradient(const char* what, std::vector<double>& x, const std::vector<double>& analytic,
                            const std::function<double()>& loss, double tol = 1e-6, size_t max_checks = 400) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  size_t stride = x.size() > max_checks ? x.size() / max_checks : 1;
  double h = 1e-5, worst = 0;
  size_t worst_i = 0;
  for (size_t i = 0; i < x.size(); i += stride) {
    double keep = x[i];
    x[i] = keep + h;
    double lp = loss();
    x[i] = keep - h;
    double lm = loss();
    x[i] = keep;
    double numeric = (lp - lm) / (2 * h);
    double err = std::fabs(numeric - analytic[i]) / std::max(std::fabs(numeric) + std::fabs(analytic[i]), 1e-3);
    if (err > worst) worst = err, worst_i = i;
  }
  EXPECT_LT(worst, tol) << what << ": worst relative error at index " << worst_i << " analytic " << analytic[worst_i];
}

// A whole model's gradient against finite differences, tensor by tensor (so a failure names the tensor), on
// B random sequences of T bytes. Every parameter is first moved off its init, so gradients through norms,
// skips, biases and zero-initialised vectors are generic. `what` prefixes the tensor names in failures.
inline void expect_model_gradients(Model<double>& m, int B, int T, Rng& rng, const std::string& what) {
  std::vector<uint8_t> x((size_t)B * T), y((size_t)B * T);
  for (auto& b : x) b = uint8_t(rng.next_u64());
  for (auto& b : y) b = uint8_t(rng.next_u64());
  for (double& w : m.params()) w += 0.1 * rng.normal();
  std::vector<double>& W = m.params();
  auto loss = [&] { return m.forward(x.data(), y.data(), B, T, nullptr); };
  std::fill(m.grads().begin(), m.grads().end(), 0.0);
  loss();
  m.backward();
  std::vector<double> G = m.grads();
  for (const ParamInfo& p : m.param_info()) {
    std::vector<double> slice(W.begin() + p.offset, W.begin() + p.offset + p.size);
    std::vector<double> gslice(G.begin() + p.offset, G.begin() + p.offset + p.size);
    auto sliced_loss = [&] {
      std::copy(slice.begin(), slice.end(), W.begin() + p.offset);
      return loss();
    };
    expect_gradient((what + p.name).c_str(), slice, gslice, sliced_loss, 1e-5, 60);
    std::copy(slice.begin(), slice.end(), W.begin() + p.offset);
  }
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
  return s;
}

}  // namespace bytelm::testing
