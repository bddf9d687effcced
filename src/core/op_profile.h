// Where a step's time goes, op by op (bytelm bench --profile). When enabled,
// each scope waits for the GPU before and after its op, so the times are
// exact per op but the step runs slower than unprofiled: read the shares,
// not the total. Disabled, a scope costs one branch.
#pragma once
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <utility>

namespace bytelm {

struct OpProfile {
  bool enabled = false;
  std::function<void()> sync;  // waits for the device
  std::map<std::string, std::pair<double, long>> ms_and_calls;
  static OpProfile& get() {
    static OpProfile p;
    return p;
  }
  std::string report() const;  // one line per op, largest first
};

class OpScope {
 public:
  explicit OpScope(const char* name) {
    if (OpProfile::get().enabled) start(name);
  }
  // A name made only when profiling (a matrix product's shape, say): make() is not called otherwise.
  template <class Make>
  explicit OpScope(Make make) {
    if (OpProfile::get().enabled) start(make());
  }
  ~OpScope() {
    OpProfile& p = OpProfile::get();
    if (!p.enabled) return;
    if (p.sync) p.sync();
    auto& slot = p.ms_and_calls[name_];
    slot.first += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count();
    slot.second += 1;
  }

 private:
  // Only when profiling: disabled, a scope neither names nor times anything.
  void start(std::string name) {
    name_ = std::move(name);
    OpProfile& p = OpProfile::get();
    if (p.sync) p.sync();
    t0_ = std::chrono::steady_clock::now();
  }
  std::string name_;
  std::chrono::steady_clock::time_point t0_;
};

// The matrix products ("gemm ...", by shape) run inside the layers' scopes: their lines are shares of the same
// total, not added to it.
inline std::string OpProfile::report() const {
  std::multimap<double, std::string, std::greater<double>> by_time;
  double total = 0;
  for (const auto& [name, v] : ms_and_calls) {
    by_time.emplace(v.first, name);
    if (name.rfind("gemm ", 0) != 0) total += v.first;
  }
  std::string s;
  char line[160];
  for (const auto& [ms, name] : by_time) {
    std::snprintf(line, sizeof line, "%-32s %9.2f ms %5.1f%% %7ld calls\n", name.c_str(), ms, 100 * ms / total,
                  ms_and_calls.at(name).second);
    s += line;
  }
  return s;
}

}  // namespace bytelm
