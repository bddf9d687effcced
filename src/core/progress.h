// A one-line progress bar on stderr for long jobs: redrawn in place on a
// terminal, printed as plain lines (at most every few seconds) otherwise.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace bytelm {

class Progress {
 public:
  // Rate and ETA count from `start` (a resumed run starts mid-way).
  Progress(std::string label, int64_t total, bool enabled, int64_t start = 0);
  // done: units finished so far; detail: text the caller appends (e.g. "loss 2.31").
  void update(int64_t done, const std::string& detail);
  // Final line; drawn only if the bar was shown at all, so quick jobs stay silent.
  void finish(int64_t done, const std::string& detail);
  // The job also stops `seconds` after the bar's start (train --max-seconds): the ETA and the bar follow the clock
  // where it ends the job sooner than the count.
  void set_time_limit(double seconds) { time_limit_ = seconds; }

 private:
  void draw(int64_t done, const std::string& detail, bool final);
  std::string label_;
  int64_t total_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int64_t start_done_;
  double time_limit_ = 0;
  bool drawn_ = false;
};

// One line of the bar, without terminal control: "label done/total [bar] detail | ETA t". `elapsed` seconds since
// the count was at start_done; time_limit > 0: the job stops then whatever its count, so the ETA is the sooner of
// the two and the bar fills by whichever is further along. No ETA on the final line or before any progress.
std::string progress_line(const std::string& label, int64_t done, int64_t total, int64_t start_done, double elapsed,
                          double time_limit, const std::string& detail, bool final);

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"
std::string format_rate(double per_s);         // "12.3 K", "4.56 M"

}  // namespace bytelm
