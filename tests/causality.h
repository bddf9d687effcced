// The causality check every model must pass: changing the bytes after
// position t leaves every output at positions <= t bit-identical. One
// implementation, the library's (infer/leakcheck.h), which `bytelm leakcheck` runs too.
#pragma once
#include <gtest/gtest.h>

#include "core/rng.h"
#include "infer/leakcheck.h"
#include "models/model.h"

namespace bytelm::testing {

// Checks every t of one random sequence of length T; `what` names the case in failures.
inline void expect_causal(Model<float>& m, int T, Rng& rng, const std::string& what) {
  LeakcheckOptions opt;
  opt.seq = T;
  opt.sequences = 1;
  opt.batch = 4;  // several perturbed copies a forward, so batched rows are checked too
  opt.seed = rng.next_u64();
  LeakcheckReport report = leakcheck(m, opt);
  EXPECT_EQ(report.positions.size(), size_t(std::max(T - 1, 0))) << what;
  EXPECT_TRUE(report.passed()) << what << ": " << report.summary();
}

}  // namespace bytelm::testing
