// The progress bar's line (core/progress.h): count, bar and ETA, and a job that the clock ends (train
// --max-seconds) shown by the clock, not by a count it will never reach.
#include <gtest/gtest.h>

#include "core/progress.h"

namespace bytelm {
namespace {

TEST(Progress, CountedJobShowsItsShareAndTheTimeLeft) {
  // 250 of 1000 in 10 s since 0: a quarter of the bar, 750 more at 25 a second
  EXPECT_EQ(progress_line("step", 250, 1000, 0, 10.0, 0, "loss 2.000", false),
            "step 250/1000 [======                  ] loss 2.000 | ETA 30s");
  // resumed at 200: the rate counts from there
  EXPECT_EQ(progress_line("step", 250, 1000, 200, 10.0, 0, "", false), "step 250/1000 [======                  ] ETA 2m30s");
  // the final line and a job with no progress yet carry no ETA
  EXPECT_EQ(progress_line("step", 1000, 1000, 0, 40.0, 0, "done", true), "step 1000/1000 [========================] done");
  EXPECT_EQ(progress_line("bytes", 0, 1000, 0, 0.0, 0, "", false), "bytes 0/1000 [                        ] ");
}

TEST(Progress, ClockLimitedJobFollowsTheClock) {
  // 1,211 of 1,000,000 steps 15 s into a 45 s run: the clock ends it in 30 s (the count would take 3.4 hours),
  // and the bar is a third full
  EXPECT_EQ(progress_line("step", 1211, 1000000, 0, 15.0, 45.0, "loss 1.5", false),
            "step 1211/1000000 [========                ] loss 1.5 | ETA 30s");
  // where the count ends it sooner, the count's ETA and bar stand
  EXPECT_EQ(progress_line("step", 500, 1000, 0, 10.0, 3600.0, "", false), "step 500/1000 [============            ] ETA 10s");
  // past the limit (the last step running over): nothing left, the bar full
  EXPECT_EQ(progress_line("step", 90, 1000, 0, 50.0, 45.0, "", false), "step 90/1000 [========================] ETA 0s");
}

}  // namespace
}  // namespace bytelm
