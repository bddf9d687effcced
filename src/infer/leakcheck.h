// The causality check every model must pass, as one library call (the tests and `bytelm leakcheck` both use it).
// Output t of a forward is the loss of predicting y[t] from x[0..t], so changing any byte after t, input or
// target, must leave outputs 0..t bit-identical. A model that breaks this sees (part of) what it predicts: it
// scores an impossibly low bits per byte that it cannot reproduce when generating, where the future is not there.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/model.h"

namespace bytelm {

struct LeakcheckOptions {
  int seq = 256;      // bytes per random sequence
  int sequences = 4;  // random sequences, each perturbed at every tested position
  int positions = 0;  // how many positions t to test: 0 (or >= seq - 1) tests every t in 0..seq-2
  int batch = 16;     // perturbed copies per forward
  uint64_t seed = 1;  // the random sequences and the bytes that replace them
};

struct LeakcheckReport {
  std::vector<int> positions;    // the positions t tested
  int seq = 0, sequences = 0;
  int64_t rows_compared = 0;     // outputs held to bit-identity
  int first_leak_position = -1;  // the smallest t at which changing the bytes after t moved an output at or before t
  int first_leak_row = -1;       // the earliest output that moved then
  int leaking_positions = 0;     // how many tested t leaked (in any sequence)
  double max_change = 0;         // the largest |change| of an output at or before its t (0 unless a leak)
  bool input_dependent = false;  // changing every input byte moved some output (else the check cannot fail)
  bool deterministic = true;     // the same batch, run twice, gave the same outputs to the bit
  double seconds = 0;

  bool passed() const { return first_leak_position < 0 && input_dependent && deterministic; }
  // "pass", "leak", "vacuous" (outputs ignore the input) or "nondeterministic" (differences prove nothing then).
  std::string verdict() const;
  // One line for a person: the verdict and, for a leak, the first leaking position and row.
  std::string summary() const;
};

// The positions t to test in a sequence of `seq` bytes: all of 0..seq-2 when `count` is 0 or covers them; else
// `count` of them, sorted: at each end, every offset of two patches of `patch` bytes (up to count/4 positions; where
// the learned start vector and an incomplete last patch come in, and a wrong patch index shows), evenly spaced between.
std::vector<int> leakcheck_positions(int seq, int count, int patch);

// Runs the check on any model, CPU or GPU, through Model::forward's row losses only. Each sequence is also fed
// with every input byte changed (targets kept) to show the outputs depend on the input at all. Every forward has
// the same shape [batch, seq] and the unperturbed batch runs twice, so that a difference can only come from the
// bytes changed, not from another kernel choice or run-to-run noise. Error for bad options.
LeakcheckReport leakcheck(Model<float>& model, const LeakcheckOptions& options);

}  // namespace bytelm
