// The causality check every model must pass: changing the bytes after
// position t leaves every output at positions <= t bit-identical.
#pragma once
#include <gtest/gtest.h>

#include "core/rng.h"
#include "models/model.h"

namespace bytelm::testing {

// Checks every t of one random sequence of length T; `what` names the case in failures.
inline void expect_causal(Model<float>& m, int T, Rng& rng, const std::string& what) {
  std::vector<uint8_t> x(T), y(T);
  for (int i = 0; i < T; i++) x[i] = uint8_t(rng.next_u64()), y[i] = uint8_t(rng.next_u64());
  std::vector<float> base(T), moved(T);
  m.forward(x.data(), y.data(), 1, T, base.data());
  for (int t = 0; t < T - 1; t++) {
    auto x2 = x;
    for (int s = t + 1; s < T; s++) x2[s] = uint8_t(x2[s] + 1 + rng.next_u64() % 255);
    m.forward(x2.data(), y.data(), 1, T, moved.data());
    for (int s = 0; s <= t; s++)
      ASSERT_EQ(base[s], moved[s]) << what << ": output " << s << " moved when bytes after " << t << " changed";
    // and the future does move (the check can fail): some output after t changes
    bool any = false;
    for (int s = t + 1; s < T; s++) any |= base[s] != moved[s];
    EXPECT_TRUE(any) << what << " t=" << t;
  }
}

}  // namespace bytelm::testing
