#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace bytelm {

Progress::Progress(std::string label, int64_t total, bool enabled, int64_t start)
    : label_(std::move(label)), total_(total), enabled_(enabled), tty_(isatty(2)), start_done_(start) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void Progress::update(int64_t done, const std::string& detail) {
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since < (tty_ ? 0.2 : 5.0)) return;
  last_draw_ = now;
  draw(done, detail, false);
}

void Progress::finish(int64_t done, const std::string& detail) {
  if (drawn_) draw(done, detail, true);
}

void Progress::draw(int64_t done, const std::string& detail, bool final) {
  if (!enabled_) return;
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  drawn_ = true;
  std::string line = progress_line(label_, done, total_, start_done_, elapsed, time_limit_, detail, final);
  std::fprintf(stderr, "%s%s%s", tty_ ? "\r\033[K" : "", line.c_str(), (tty_ && !final) ? "" : "\n");
  std::fflush(stderr);
}

std::string progress_line(const std::string& label, int64_t done, int64_t total, int64_t start_done, double elapsed,
                          double time_limit, const std::string& detail, bool final) {
  double rate = elapsed > 0 ? (done - start_done) / elapsed : 0;
  double fraction = total > 0 ? (double)done / total : 1.0;
  double eta = rate > 0 ? (total - done) / rate : -1;  // -1: no ETA yet
  if (time_limit > 0) {
    double left = std::max(0.0, time_limit - elapsed);
    fraction = std::max(fraction, std::min(1.0, elapsed / time_limit));
    eta = eta < 0 ? left : std::min(eta, left);
  }
  std::string eta_text = eta >= 0 && !final ? (detail.empty() ? "ETA " : " | ETA ") + format_duration(eta) : "";
  const int width = 24;
  std::string bar(std::clamp(int(width * fraction), 0, width), '=');
  bar.resize(width, ' ');
  return label + " " + std::to_string(done) + "/" + std::to_string(total) + " [" + bar + "] " + detail + eta_text;
}

std::string format_duration(double s) {
  char buf[32];
  long t = long(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

std::string format_rate(double v) {
  char buf[32];
  if (v >= 1e9) std::snprintf(buf, sizeof buf, "%.2f G", v / 1e9);
  else if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2f M", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1f K", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f ", v);
  return buf;
}

}  // namespace bytelm
