#include "train/compare.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <new>
#include <set>
#include <utility>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/git_commit.h"
#include "core/json.h"
#include "infer/leakcheck.h"
#include "train/bench.h"
#include "train/trainer.h"

namespace bytelm {

namespace fs = std::filesystem;

namespace {

// A run's name becomes a directory under `out`: plain characters only, so it can neither climb out nor nest.
bool plain_name(const std::string& name) {
  if (name.empty() || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return std::isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.'; });
}

// The lowest val_bpb a run logged. Its last evaluation is of the stopping step, so this covers the final one too.
double best_val_bpb(const std::string& metrics_path) {
  std::ifstream in(metrics_path);
  std::string line;
  double best = CompareRow::kNone;
  while (std::getline(in, line)) {
    Json j = json_parse(line, metrics_path);
    const Json* v = j.find("val_bpb");
    if (!v) continue;
    double bpb = v->as_number(metrics_path);
    if (std::isnan(best) || bpb < best) best = bpb;
  }
  return best;
}

// A short check: a leak is in the wiring, not the weights, so a fresh model and two sequences are enough.
std::string leak_verdict(const RunConfig& cfg, const std::string& device) {
  std::unique_ptr<Model<float>> model = make_model_on(device, cfg.model, cfg.train.seed);
  LeakcheckOptions opt;
  opt.seq = std::max(2, std::min(cfg.train.seq, 256));
  opt.sequences = 2;
  opt.batch = 4;
  opt.seed = cfg.train.seed;
  return leakcheck(*model, opt).verdict();
}

void write_rows(const std::string& path, const std::vector<CompareRow>& rows) {
  std::string text;
  for (const CompareRow& row : rows) text += compare_row_json(row) + "\n";
  write_file_atomic(path, text, "compare table");
}

}  // namespace

std::string compare_row_json(const CompareRow& r) {
  return "{\"name\":" + json_quote(r.name) + ",\"family\":" + json_quote(r.family) +
         ",\"params\":" + std::to_string(r.params) + ",\"steps\":" + std::to_string(r.steps) +
         ",\"bytes_per_s\":" + json_number(std::round(r.bytes_per_s)) + ",\"best_val_bpb\":" + json_number(r.best_val_bpb) +
         ",\"final_val_bpb\":" + json_number(r.final_val_bpb) +
         ",\"seconds\":" + json_number(std::round(r.seconds * 100) / 100) +
         ",\"leakcheck\":" + (r.leakcheck.empty() ? "null" : json_quote(r.leakcheck)) +
         ",\"run_dir\":" + json_quote(r.run_dir) + ",\"error\":" + (r.error.empty() ? "null" : json_quote(r.error)) +
         ",\"interrupted\":" + (r.interrupted ? "true" : "false") +
         ",\"commit\":" + (r.commit.empty() ? "null" : json_quote(r.commit)) +
         ",\"device_name\":" + (r.device_name.empty() ? "null" : json_quote(r.device_name)) +
         ",\"model_config\":" + model_config_json(r.cfg.model) +
         ",\"train_config\":" + train_config_json(r.cfg.train) + "}";
}

std::vector<CompareRow> read_compare_rows(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read " + path + (fs::exists(path) ? "" : ": no such file"));
  std::vector<CompareRow> rows;
  std::string line;
  for (int number = 1; std::getline(in, line); number++) {
    if (line.empty()) continue;
    std::string where = path + ":" + std::to_string(number);
    Json j = json_parse(line, where);
    auto field = [&](const char* key) -> const Json& {
      const Json* v = j.find(key);
      if (!v) throw Error(where + ": not a compare row (no \"" + std::string(key) + "\")");
      return *v;
    };
    auto number_or_none = [&](const char* key) {
      const Json& v = field(key);
      return v.kind == Json::Kind::Null ? CompareRow::kNone : v.as_number(where + " " + key);
    };
    auto text_or_empty = [&](const char* key) {
      const Json& v = field(key);
      return v.kind == Json::Kind::Null ? std::string() : v.as_string(where + " " + key);
    };
    CompareRow r;
    r.name = field("name").as_string(where + " name");
    r.family = field("family").as_string(where + " family");
    r.params = field("params").as_int(where + " params");
    r.steps = (int)field("steps").as_int(where + " steps");
    r.bytes_per_s = number_or_none("bytes_per_s");
    r.best_val_bpb = number_or_none("best_val_bpb");
    r.final_val_bpb = number_or_none("final_val_bpb");
    r.seconds = number_or_none("seconds");
    r.leakcheck = text_or_empty("leakcheck");
    r.run_dir = field("run_dir").as_string(where + " run_dir");
    r.error = text_or_empty("error");
    r.interrupted = field("interrupted").as_bool(where + " interrupted");
    for (auto [key, to] : {std::pair{"commit", &r.commit}, std::pair{"device_name", &r.device_name}})
      if (const Json* v = j.find(key); v && v->kind != Json::Kind::Null) *to = v->as_string(where + " " + key);
    apply_config_json(r.cfg, field("model_config"), where + " model_config");
    apply_config_json(r.cfg, field("train_config"), where + " train_config");
    rows.push_back(std::move(r));
  }
  if (rows.empty()) throw Error(path + " holds no compare rows (is it empty?)");
  return rows;
}

std::vector<CompareRow> compare(const CompareJob& job) {
  // Everything that would stop the whole study is checked before the first run, not after an hour of the others.
  if (job.runs.empty()) throw Error("compare needs at least one run");
  if (!(job.seconds_per_run > 0) || !std::isfinite(job.seconds_per_run))
    throw Error("seconds per run must be > 0, got " + json_number(job.seconds_per_run));
  std::string table_path = (fs::path(job.out) / "compare.jsonl").string();
  if (fs::exists(table_path))
    throw Error(job.out + " already holds a comparison (compare.jsonl); pick another output directory");
  std::set<std::string> names;
  for (const CompareRun& run : job.runs) {
    if (!plain_name(run.name))
      throw Error("run name '" + run.name + "' must be letters, digits, '-', '_' or '.' (not first): it names a directory");
    if (!names.insert(run.name).second) throw Error("run name '" + run.name + "' is given twice");
    if (fs::exists(fs::path(job.out) / run.name))
      throw Error((fs::path(job.out) / run.name).string() + " already exists; pick another output directory");
  }
  std::error_code ec;
  fs::create_directories(job.out, ec);
  if (ec) throw Error("cannot create output directory " + job.out + ": " + ec.message());

  std::vector<CompareRow> rows;
  for (size_t i = 0; i < job.runs.size(); i++) {
    const CompareRun& run = job.runs[i];
    CompareRow row;
    row.name = run.name;
    row.cfg = run.cfg;
    row.family = run.cfg.model.arch;
    row.run_dir = (fs::path(job.out) / run.name).string();
    row.commit = bytelm_git_commit;
    try {
      validate(run.cfg);
      row.params = param_count(run.cfg.model);
      if (job.progress) std::fprintf(stderr, "compare: run %zu of %zu, '%s': leak check\n", i + 1, job.runs.size(), run.name.c_str());
      row.leakcheck = leak_verdict(run.cfg, job.device);
      if (job.progress)
        std::fprintf(stderr, "compare: run %zu of %zu, '%s': leak check %s; training for %gs into %s\n", i + 1,
                     job.runs.size(), run.name.c_str(), row.leakcheck.c_str(), job.seconds_per_run, row.run_dir.c_str());
      TrainJob train_job;
      train_job.cfg = run.cfg;
      train_job.data = job.data;
      train_job.val = job.val;
      train_job.out = row.run_dir;
      train_job.max_seconds = job.seconds_per_run;
      train_job.progress = job.progress;
      train_job.device = job.device;
      TrainReport report = train(train_job);
      row.steps = report.step;
      row.bytes_per_s = report.bytes_per_s;
      if (report.val_bpb > 0) row.final_val_bpb = report.val_bpb;  // else interrupted before any evaluation
      row.seconds = report.seconds;
      row.best_val_bpb = best_val_bpb((fs::path(row.run_dir) / "metrics.jsonl").string());
      row.interrupted = report.interrupted;
      row.device_name = device_description(job.device);
    } catch (const std::bad_alloc&) {
      row.error = "out of memory (try a smaller batch, seq or model)";
    } catch (const std::exception& e) {  // bytelm's Error and the filesystem's alike: the row says why, the next run goes on
      row.error = e.what();
    }
    if (job.progress && !row.error.empty())
      std::fprintf(stderr, "compare: run '%s' failed: %s\n", run.name.c_str(), row.error.c_str());
    rows.push_back(row);
    write_rows(table_path, rows);  // after every run, so a study cut short keeps the rows it finished
    if (row.interrupted) break;
  }
  return rows;
}

}  // namespace bytelm
