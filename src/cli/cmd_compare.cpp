// compare: several configs trained for the same wall-clock time on the same data, and a table of what each reached.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/json.h"
#include "core/progress.h"
#include "train/compare.h"
#include "train/config.h"

namespace bytelm {

namespace {

// A run spec that leaves `steps` alone gets this many, so the clock, not the step count, ends every run.
constexpr int kClockSteps = 1000000;
// A run spec that sets neither eval_every nor eval_seconds validates (and checkpoints) this many times in its
// `seconds`, not every 100 steps: a fast model then spends no larger share of the clock on it than a slow one.
constexpr int kClockEvals = 10;

// "NAME=PRESET[,key=value...]" -> the run; unknown presets and keys are errors here, before anything trains.
CompareRun parse_run(const std::string& text, double seconds) {
  size_t eq = text.find('=');
  if (eq == std::string::npos)
    throw Error("--run expects NAME=PRESET[,key=value...] (e.g. --run base=ssm-2m,seq=1024), got '" + text + "'");
  CompareRun run;
  run.name = text.substr(0, eq);
  std::string what = "--run " + run.name;
  std::vector<std::string> parts;
  for (size_t begin = eq + 1;;) {
    size_t comma = text.find(',', begin);
    parts.push_back(text.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin));
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  try {
    run.cfg = preset(parts[0]);
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }
  bool steps_set = false, eval_set = false;
  for (size_t i = 1; i < parts.size(); i++) {
    size_t kv = parts[i].find('=');
    if (kv == std::string::npos) throw Error(what + ": expected key=value after the preset, got '" + parts[i] + "'");
    std::string key = parts[i].substr(0, kv);
    set_config_key(run.cfg, key, parts[i].substr(kv + 1), what);
    steps_set = steps_set || key == "steps";
    eval_set = eval_set || key == "eval_every" || key == "eval_seconds";
  }
  if (!steps_set) run.cfg.train.steps = kClockSteps;
  if (!eval_set) {
    run.cfg.train.eval_every = kClockSteps;
    run.cfg.train.eval_seconds = seconds / kClockEvals;
  }
  return run;
}

std::string thousands(int64_t n) {
  std::string digits = std::to_string(n), s;
  for (size_t i = 0; i < digits.size(); i++) {
    if (i > 0 && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

std::string bpb_text(double bpb) {
  if (std::isnan(bpb)) return "-";
  char s[32];
  std::snprintf(s, sizeof s, "%.4f", bpb);
  return s;
}

// Left-aligned columns wide enough for their widest cell; a failed run's error follows its row. The commit and the
// device that ran each row, where the rows recorded them (a study joined from several calls may mix them).
std::string format_table(const std::vector<CompareRow>& rows) {
  bool recorded = std::any_of(rows.begin(), rows.end(), [](const CompareRow& r) { return !r.commit.empty(); });
  std::vector<std::vector<std::string>> cells = {
      {"name", "params", "steps", "bytes/s", "best val bpb", "final val bpb", "leakcheck"}};
  if (recorded) cells[0].insert(cells[0].end(), {"commit", "device"});
  for (const CompareRow& r : rows) {
    bool trained = r.steps > 0;
    auto or_dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
    cells.push_back({r.name, r.params > 0 ? thousands(r.params) : "-", trained ? thousands(r.steps) : "-",
                     trained ? format_rate(r.bytes_per_s) : "-", bpb_text(r.best_val_bpb), bpb_text(r.final_val_bpb),
                     or_dash(r.leakcheck)});
    if (recorded) cells.back().insert(cells.back().end(), {or_dash(r.commit), or_dash(r.device_name)});
  }
  std::vector<size_t> width(cells[0].size(), 0);
  for (const auto& line : cells)
    for (size_t c = 0; c < line.size(); c++) width[c] = std::max(width[c], line[c].size());
  std::string text;
  for (size_t i = 0; i < cells.size(); i++) {
    std::string line;
    for (size_t c = 0; c < cells[i].size(); c++) {
      std::string cell = cells[i][c];
      if (c + 1 < cells[i].size()) cell.resize(width[c] + 2, ' ');
      line += cell;
    }
    if (i > 0 && !rows[i - 1].error.empty()) line += "  error: " + rows[i - 1].error;
    if (i > 0 && rows[i - 1].interrupted) line += "  interrupted (resume with bytelm train --resume " + rows[i - 1].run_dir + ")";
    text += line + "\n";
  }
  return text;
}

// --table: the rows of several compare.jsonl files in one table, in the order given; a name twice is an error
// (two runs that would share a row).
int print_tables(const Args& args) {
  for (const char* flag : {"run", "data", "val", "out", "seconds"})
    if (args.has(flag)) throw Error(std::string("--table prints saved rows; it takes no --") + flag);
  std::vector<CompareRow> rows;
  std::vector<std::string> from;
  for (const std::string& path : args.get_all("table"))
    for (CompareRow& r : read_compare_rows(path)) {
      for (size_t i = 0; i < rows.size(); i++)
        if (rows[i].name == r.name)
          throw Error("a run named '" + r.name + "' is in " + from[i] + " and in " + path);
      rows.push_back(std::move(r));
      from.push_back(path);
    }
  std::fputs(format_table(rows).c_str(), stdout);
  return 0;
}

}  // namespace

int cmd_compare(int argc, char** argv) {
  Command cmd{"compare", "Train several configs for the same wall-clock time on the same data and print a table.",
              "--data PATH [--val PATH] --out DIR --seconds S --run NAME=SPEC [--run NAME=SPEC ...] [options]\n"
              "       bytelm compare --table FILE [--table FILE ...]",
              "Each --run is NAME=PRESET, optionally followed by comma-separated config keys:\n"
              "NAME=PRESET,key=value,... (the keys of bytelm train, spelt with '_': seq, patch, lr,\n"
              "eval_every, ...; an unknown key is an error before anything runs). For each run, in order:\n"
              "the leak check on a freshly initialised model of it (seq min(seq, 256), 2 sequences), then\n"
              "training for --seconds into DIR/NAME/ (a normal run directory: bytelm train --resume\n"
              "DIR/NAME continues it). A run that fails gets its error in the table and the next one goes on.\n"
              "The learning-rate schedule spans `steps`, so a run stopped by the clock has not finished its\n"
              "cosine decay. A run that does not set steps gets steps=1000000, so the clock ends every run\n"
              "and all runs share one schedule shape (warmup, then a nearly constant learning rate). One that\n"
              "sets neither eval_every nor eval_seconds validates and checkpoints every --seconds/10 seconds\n"
              "(eval_seconds), so a fast model spends no larger share of its clock on that than a slow one.\n"
              "Prints a table to stdout (name, params, steps, bytes/s, best and final validation bits per\n"
              "byte, leak check verdict, the bytelm commit and the device) and the path of DIR/compare.jsonl,\n"
              "which holds the same rows as JSON (one object a line, with each run's config), rewritten\n"
              "after every run. Exits 1 if a run failed. Refuses a DIR that already holds compare.jsonl or\n"
              "a directory named like a run.\n"
              "Example, patching or not at d256 L4 and seq 1024, 10 minutes each:\n"
              "  bytelm compare --data data/tinyshakespeare.txt --out runs/patching --seconds 600 \\\n"
              "      --run mean=ssm-2m,seq=1024 --run none=ssm-2m,seq=1024,patch=1\n"
              "A study run in pieces (one compare a run, on machines lent by the hour) is one table again:\n"
              "  bytelm compare --table runs/a/compare.jsonl --table runs/b/compare.jsonl",
              {{"data", "PATH", "training bytes for every run: a file or a directory"},
               {"val", "PATH", "validation file (default: each run holds out the tail of --data)"},
               {"out", "DIR", "receives one run directory per run and compare.jsonl"},
               {"seconds", "S", "wall-clock training time of each run (evaluations and checkpoints included)"},
               {"run", "NAME=SPEC", "a run: PRESET or PRESET,key=value,... (repeat for each run)"},
               {"table", "FILE", "no training: print the table of these compare.jsonl files' rows (repeat)"},
               {"device", "cpu|cuda|cuda-tf32|cuda-fp32", "where to run (default cpu)"},
               {"threads", "N", "CPU threads (default: all cores)"},
               {"quiet", "", "no progress lines or bars on stderr"}}};
  Args args = Args::parse(cmd, argc, argv);
  if (args.help) return std::fputs(cmd.help_text().c_str(), stdout), 0;
  if (args.has("table")) return print_tables(args);
  CompareJob job;
  job.device = apply_runtime_flags(args);
  job.progress = !args.has("quiet");
  job.data = args.require("data");
  job.val = args.get("val");
  job.out = args.require("out");
  job.seconds_per_run = args.get_double("seconds", 0);
  if (!(job.seconds_per_run > 0)) throw Error("--seconds must be > 0 (the training time of each run)");
  for (const std::string& text : args.get_all("run")) job.runs.push_back(parse_run(text, job.seconds_per_run));
  if (job.runs.empty()) throw Error("give at least one --run NAME=SPEC (see bytelm compare --help)");

  std::vector<CompareRow> rows = compare(job);
  std::fputs(format_table(rows).c_str(), stdout);
  std::printf("%s\n", (std::filesystem::path(job.out) / "compare.jsonl").string().c_str());
  size_t failed = 0;
  for (const CompareRow& r : rows) failed += !r.error.empty();
  if (!rows.empty() && rows.back().interrupted) return 130;
  if (failed > 0) {
    std::fprintf(stderr, "bytelm compare: %zu of %zu runs failed (see the table)\n", failed, rows.size());
    return 1;
  }
  return 0;
}

}  // namespace bytelm
