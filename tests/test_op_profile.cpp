// OpScope / OpProfile (core/op_profile.h): disabled, scopes record nothing and never make their names; enabled,
// each scope adds its time and a call under its name, and the products' "gemm ..." lines stay out of the total.
#include <gtest/gtest.h>

#include "core/op_profile.h"

namespace bytelm {
namespace {

TEST(OpProfile, ScopesRecordOnlyWhileEnabled) {
  OpProfile& p = OpProfile::get();
  p.ms_and_calls.clear();
  p.enabled = false;
  int made = 0;
  {
    OpScope plain("layernorm_forward");
    OpScope lazy([&] { return ++made, std::string("gemm 8x8x8 NN"); });
  }
  EXPECT_TRUE(p.ms_and_calls.empty());
  EXPECT_EQ(made, 0) << "a lazy name is made only when profiling";

  p.enabled = true;
  for (int i = 0; i < 3; i++) {
    OpScope plain("layernorm_forward");
    OpScope lazy([&] { return ++made, std::string("gemm 8x8x8 NN"); });
  }
  p.enabled = false;
  EXPECT_EQ(made, 3);
  ASSERT_EQ(p.ms_and_calls.count("layernorm_forward"), 1u);
  EXPECT_EQ(p.ms_and_calls.at("layernorm_forward").second, 3);
  EXPECT_EQ(p.ms_and_calls.at("gemm 8x8x8 NN").second, 3);
  std::string report = p.report();
  EXPECT_NE(report.find("layernorm_forward"), std::string::npos) << report;
  EXPECT_NE(report.find("gemm 8x8x8 NN"), std::string::npos) << report;
  p.ms_and_calls.clear();
}

}  // namespace
}  // namespace bytelm
