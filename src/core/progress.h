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

 private:
  void draw(int64_t done, const std::string& detail, bool final);
  std::string label_;
  int64_t total_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int64_t start_done_;
  bool drawn_ = false;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"
std::string format_rate(double per_s);         // "12.3 K", "4.56 M"

}  // namespace bytelm
