#include "infer/leakcheck.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.h"
#include "core/rng.h"

namespace bytelm {

namespace {

// One row of a batch: its sequence with every byte from position `first` on changed. A causality probe of
// position t changes inputs and targets from t + 1; the dependence probe changes every input and no target.
struct Probe {
  int first;
  bool targets_too;
};

// A different byte, otherwise uniformly random.
uint8_t another_byte(uint8_t b, Rng& rng) { return uint8_t(b + 1 + rng.next_u64() % 255); }

// Exact comparison that also holds a NaN output to itself.
bool same_bits(float a, float b) { return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b); }

}  // namespace

std::string LeakcheckReport::verdict() const {
  if (!deterministic) return "nondeterministic";
  if (first_leak_position >= 0) return "leak";
  if (!input_dependent) return "vacuous";
  return "pass";
}

std::string LeakcheckReport::summary() const {
  std::string v = verdict();
  if (v == "nondeterministic")
    return "nondeterministic: the same batch gave different outputs when run twice, so a bit-for-bit comparison "
           "cannot tell a leak from noise";
  if (v == "leak") {
    char change[32];
    std::snprintf(change, sizeof change, "%.3g", max_change);
    return "leak: output " + std::to_string(first_leak_row) + " moved when only the bytes after position " +
           std::to_string(first_leak_position) + " changed (max change " + change + "; " +
           std::to_string(leaking_positions) + " of " + std::to_string(positions.size()) + " tested positions leak)";
  }
  if (v == "vacuous")
    return "vacuous: no output moved when every input byte changed: the outputs do not depend on the input at all, "
           "so the check cannot fail";
  return "pass: no output at or before t moved when the bytes after t changed, for " + std::to_string(positions.size()) +
         " positions t in " + std::to_string(sequences) + " random sequences of " + std::to_string(seq) + " bytes (" +
         std::to_string(rows_compared) + " outputs compared bit for bit)";
}

std::vector<int> leakcheck_positions(int seq, int count, int patch) {
  int last = seq - 2;  // the last position with a byte after it
  std::vector<int> t;
  if (last < 0) return t;
  if (count == 0 || count >= last + 1) {
    for (int i = 0; i <= last; i++) t.push_back(i);
    return t;
  }
  int ends = (int)std::min<int64_t>(2 * (int64_t)patch, count / 4);
  // `between` evenly spaced positions in [lo, hi], which holds more than `between` integers since count <= last
  int lo = ends, hi = last - ends, between = count - 2 * ends;
  for (int i = 0; i < ends; i++) t.push_back(i);
  for (int i = 0; i < between; i++) t.push_back(between == 1 ? lo : lo + int((int64_t)i * (hi - lo) / (between - 1)));
  for (int i = ends - 1; i >= 0; i--) t.push_back(last - i);
  return t;
}

LeakcheckReport leakcheck(Model<float>& model, const LeakcheckOptions& o) {
  if (o.seq < 1 || o.sequences < 1 || o.batch < 1)
    throw Error("leakcheck: seq, sequences and batch must be >= 1");
  if (o.positions < 0) throw Error("leakcheck: positions must be >= 0 (0 tests every position)");
  auto start = std::chrono::steady_clock::now();
  LeakcheckReport r;
  r.seq = o.seq;
  r.sequences = o.sequences;
  r.positions = leakcheck_positions(o.seq, o.positions, std::max(1, model.config().patch));
  // probe k < positions.size() tests positions[k]; the dependence probe comes last
  std::vector<Probe> probes;
  for (int t : r.positions) probes.push_back({t + 1, true});
  probes.push_back({0, false});
  std::vector<bool> leaked(r.positions.size(), false);

  const int T = o.seq, B = (int)std::min<size_t>(o.batch, probes.size());
  std::vector<uint8_t> x(T), y(T), xb((size_t)B * T), yb((size_t)B * T);
  std::vector<float> first_run((size_t)B * T), reference((size_t)B * T), out((size_t)B * T);
  auto unperturbed_row = [&](int b) {
    std::copy(x.begin(), x.end(), xb.begin() + (size_t)b * T);
    std::copy(y.begin(), y.end(), yb.begin() + (size_t)b * T);
  };
  Rng rng(o.seed);
  for (int s = 0; s < o.sequences; s++) {
    for (int i = 0; i < T; i++) x[i] = uint8_t(rng.next_u64()), y[i] = uint8_t(rng.next_u64());
    for (int b = 0; b < B; b++) unperturbed_row(b);
    // The second run is the reference, so a model whose first forward of a shape differs from the rest (say, one
    // that reads a freshly allocated buffer) shows as nondeterministic, not as leaking everywhere.
    model.forward(xb.data(), yb.data(), B, T, first_run.data());
    model.forward(xb.data(), yb.data(), B, T, reference.data());
    r.deterministic = r.deterministic && std::equal(first_run.begin(), first_run.end(), reference.begin(), same_bits);

    for (size_t k0 = 0; k0 < probes.size(); k0 += B) {
      // rows past the last probe stay unperturbed: every forward has the reference's shape
      for (int b = 0; b < B; b++) {
        unperturbed_row(b);
        if (k0 + b >= probes.size()) continue;
        const Probe& p = probes[k0 + b];
        for (int i = p.first; i < T; i++) {
          xb[(size_t)b * T + i] = another_byte(x[i], rng);
          if (p.targets_too) yb[(size_t)b * T + i] = another_byte(y[i], rng);
        }
      }
      model.forward(xb.data(), yb.data(), B, T, out.data());

      for (int b = 0; b < B && k0 + b < probes.size(); b++) {
        size_t k = k0 + b;
        const float* before = reference.data() + (size_t)b * T;
        const float* after = out.data() + (size_t)b * T;
        if (!probes[k].targets_too) {
          r.input_dependent = r.input_dependent || !std::equal(before, before + T, after, same_bits);
          continue;
        }
        int t = r.positions[k], first_moved = -1;
        for (int i = 0; i <= t; i++) {
          if (same_bits(before[i], after[i])) continue;
          double change = std::fabs(double(after[i]) - double(before[i]));
          r.max_change = std::max(r.max_change, std::isnan(change) ? std::numeric_limits<double>::infinity() : change);
          if (first_moved < 0) first_moved = i;
        }
        r.rows_compared += t + 1;
        if (first_moved < 0) continue;
        leaked[k] = true;
        bool earlier = r.first_leak_position < 0 || t < r.first_leak_position ||
                       (t == r.first_leak_position && first_moved < r.first_leak_row);
        if (earlier) r.first_leak_position = t, r.first_leak_row = first_moved;
      }
    }
  }
  r.leaking_positions = (int)std::count(leaked.begin(), leaked.end(), true);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace bytelm
