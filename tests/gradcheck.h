// Finite-difference gradient checking in double precision.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "core/rng.h"

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

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
  return s;
}

}  // namespace bytelm::testing
