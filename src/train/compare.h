// A study as one call: several run configs, each trained for the same wall-clock time on the same data, into one
// run directory each, and a table of what each reached (`bytelm compare` prints it).
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "train/config.h"

namespace bytelm {

struct CompareRun {
  std::string name;  // the row's label and its run directory under the job's `out`
  RunConfig cfg;
};

struct CompareJob {
  std::vector<CompareRun> runs;
  std::string data;           // file or directory, shared by every run
  std::string val;            // optional validation file; else each run holds out the tail of `data` (its val_fraction)
  std::string out;            // receives <name>/ per run and compare.jsonl
  double seconds_per_run = 0; // each run's TrainJob::max_seconds (> 0)
  std::string device = "cpu";
  bool progress = true;       // a line per run and the training progress bar on stderr
};

struct CompareRow {
  static constexpr double kNone = std::numeric_limits<double>::quiet_NaN();  // written as null
  std::string name;
  RunConfig cfg;
  std::string family;
  int64_t params = 0;
  int steps = 0;                 // steps completed
  double bytes_per_s = kNone;    // training throughput
  double best_val_bpb = kNone;   // the lowest val_bpb in the run's metrics.jsonl (the stopping step's included)
  double final_val_bpb = kNone;  // the last evaluation: of the step the clock (or `steps`) stopped at
  double seconds = kNone;        // training time, periodic evaluations and checkpoints included
  std::string leakcheck;         // the verdict on a freshly initialised model: pass, leak, vacuous, nondeterministic
  std::string run_dir;
  std::string error;             // why the run failed (the other fields then hold what was known); empty if it did not
  bool interrupted = false;      // stopped by SIGINT/SIGTERM (checkpointed); the runs after it were not started
  std::string commit;            // the bytelm that ran it (empty in rows written before rows recorded it)
  std::string device_name;       // what it trained on (device_description); empty where the run failed first
};

// Runs every config in order: the leak check on a fresh model of it (seq min(seq, 256), 2 sequences, batch 4),
// then train() for seconds_per_run into out/<name>/, resumable with `bytelm train --resume`. A run that fails
// (a bad config, a seq longer than the data, ...) gets its error in its row and the next run goes on; Ctrl-C ends
// the current run with a checkpoint and starts no more. After each run out/compare.jsonl is rewritten atomically
// with the rows so far, one JSON object a line (compare_row_json). Error, before anything is written, for no runs,
// a name that is not a plain directory name or appears twice, seconds_per_run <= 0, or an `out` that already holds
// compare.jsonl or anything named like a run.
std::vector<CompareRow> compare(const CompareJob& job);

// One line of compare.jsonl: name, family, params, steps, bytes_per_s, best_val_bpb, final_val_bpb, seconds,
// leakcheck, run_dir, error (null unless failed), interrupted, commit, device_name (null if unknown), and the run's
// model and train configs.
std::string compare_row_json(const CompareRow& row);

// The rows of a compare.jsonl, as compare() wrote them (compare_row_json), so a study run in pieces (one call
// a run, say, on a machine lent by the hour) can be put back into one table. Error naming the file and line for
// a missing file, an empty one, or a line that is not such a row.
std::vector<CompareRow> read_compare_rows(const std::string& path);

}  // namespace bytelm
