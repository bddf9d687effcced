#include "train/trainer.h"

#include <chrono>
#include <csignal>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"
#include "core/progress.h"
#include "infer/score.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/corpus.h"
#include "train/train_step.h"

namespace bytelm {

namespace fs = std::filesystem;

namespace {

// On resume, drop metric lines past the checkpoint (a crash may have logged
// steps that the checkpoint does not hold), so the log matches the run.
void trim_metrics(const std::string& path, int step) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      Json j = json_parse(line, path);
      const Json* s = j.find("step");
      if (s && s->as_int(path) > step) continue;
    } catch (const Error&) {
      continue;  // a torn last line
    }
    kept += line + "\n";
  }
  write_file_atomic(path, kept, "metrics log");
}

std::string progress_detail(double loss, const TrainReport& r) {
  char val[32] = "-";
  if (r.val_bpb > 0) std::snprintf(val, sizeof val, "%.3f", r.val_bpb);
  char detail[160];
  std::snprintf(detail, sizeof detail, "loss %.3f (%.3f bpb) | val %s bpb | %sB/s", loss, loss / std::log(2.0), val,
                format_rate(r.bytes_per_s).c_str());
  return detail;
}

volatile std::sig_atomic_t interrupt_requested = 0;
void on_interrupt(int) { interrupt_requested = 1; }

// SIGINT/SIGTERM set a flag that the loop reads after each step (instead of dying mid-step);
// the previous handlers come back when training returns.
struct InterruptGuard {
  using Handler = void (*)(int);
  Handler old_int, old_term;
  InterruptGuard() {
    interrupt_requested = 0;
    old_int = std::signal(SIGINT, on_interrupt);
    old_term = std::signal(SIGTERM, on_interrupt);
  }
  ~InterruptGuard() {
    std::signal(SIGINT, old_int);
    std::signal(SIGTERM, old_term);
  }
};

}  // namespace

TrainReport train(const TrainJob& job) {
  const RunConfig& cfg = job.cfg;
  const TrainConfig& t = cfg.train;
  validate(cfg);
  if (!(job.max_seconds >= 0) || !std::isfinite(job.max_seconds)) throw Error("max_seconds must be >= 0 (0 = no limit)");
  Corpus data = Corpus::open(job.data);
  std::optional<Corpus> val_file;
  CorpusRange train_range{&data, 0, data.size()}, val_range{};
  if (!job.val.empty()) {
    val_file.emplace(Corpus::open(job.val));
    val_range = {&*val_file, 0, val_file->size()};
  } else {
    std::tie(train_range, val_range) = split_tail(data, t.val_fraction);
  }
  if (train_range.size() < (uint64_t)t.seq + 1)
    throw Error("seq " + std::to_string(t.seq) + " needs windows of " + std::to_string(t.seq + 1) +
                " bytes, but the training data (" + job.data + ") has only " + std::to_string(train_range.size()));
  if (val_range.size() < 2) throw Error("the validation data needs at least 2 bytes");
  std::vector<uint8_t> val_bytes(std::min<uint64_t>(val_range.size(), t.eval_bytes));
  val_range.corpus->read(val_range.begin, val_bytes.size(), val_bytes.data());

  int step = 0;
  std::unique_ptr<Model<float>> model;
  std::unique_ptr<AdamW> opt;
  std::string ckpt = (fs::path(job.out) / "checkpoint.safetensors").string();
  std::string metrics_path = (fs::path(job.out) / "metrics.jsonl").string();
  if (job.resume) {
    LoadedCheckpoint ck = load_checkpoint(ckpt, true, job.device);
    step = ck.step;
    model = std::move(ck.model);
    opt = std::move(ck.opt);
    trim_metrics(metrics_path, step);
  } else {
    if (fs::exists(ckpt))
      throw Error(job.out + " already holds a run (checkpoint.safetensors); use --resume to continue it or pick another --out");
    model = make_model_on(job.device, cfg.model, t.seed);
    opt = std::make_unique<AdamW>(model->params().size());
    std::error_code ec;
    fs::create_directories(job.out, ec);
    if (ec) throw Error("cannot create run directory " + job.out + ": " + ec.message());
    std::string run_json = (fs::path(job.out) / "run.json").string();
    write_file_atomic(run_json,
                      "{\"data\":" + json_quote(fs::absolute(job.data).string()) + ",\"val\":" +
                          json_quote(job.val.empty() ? "" : fs::absolute(job.val).string()) + "}\n",
                      "run file");
    std::ofstream(metrics_path, std::ios::trunc);
  }
  std::ofstream metrics(metrics_path, std::ios::app);
  if (!metrics) throw Error("cannot write " + metrics_path);

  InterruptGuard guard;
  TrainReport report;
  int end = job.stop_after >= 0 ? std::min(t.steps, job.stop_after) : t.steps;
  std::vector<uint8_t> window((size_t)t.batch * (t.seq + 1)), x((size_t)t.batch * t.seq), y((size_t)t.batch * t.seq);
  TrainStep stepper(*model, *opt, job.tune_products);
  Progress bar("step", t.steps, job.progress, step);
  if (job.max_seconds > 0) bar.set_time_limit(job.max_seconds);
  auto t0 = std::chrono::steady_clock::now();
  int first_step = step;
  double last_loss = 0, last_eval_secs = 0;
  auto evaluate = [&](int at) {
    report.val_bpb = bits_per_byte(*model, val_bytes.data(), val_bytes.size(), t.seq, t.seq, t.batch).bpb;
    metrics << "{\"step\":" << at << ",\"val_bpb\":" << json_number(report.val_bpb) << "}\n" << std::flush;
  };
  for (; step < end; step++) {
    sample_windows(train_range, t.seed, (uint64_t)step, t.batch, t.seq + 1, window.data());
    split_windows(window.data(), t.batch, t.seq, x.data(), y.data());
    double lr = lr_at(t, step);
    StepResult r = stepper.run(x.data(), y.data(), t.batch, t.seq, t, step, lr);
    double gnorm = r.grad_norm;
    // the update is done by now (a GPU step is one unit), but nothing of it is saved: the run stops here
    if (!std::isfinite(r.loss))
      throw Error("training diverged at step " + std::to_string(step + 1) + " (loss is " + std::to_string(r.loss) +
                  "); try a lower --lr");
    // logged and shown: the bytes' cross-entropy, comparable with val_bpb; an auxiliary loss is logged apart
    float loss = r.loss - r.extra_loss;
    report.losses.push_back(loss);
    last_loss = loss;
    int done = step + 1;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    report.bytes_per_s = (done - first_step) * (double)t.batch * t.seq / std::max(secs, 1e-9);
    if (done % t.log_every == 0 || done == t.steps)
      metrics << "{\"step\":" << done << ",\"loss\":" << json_number(loss) << ",\"bpb\":" << json_number(loss / std::log(2.0))
              << (r.extra_loss != 0 ? ",\"extra_loss\":" + json_number(r.extra_loss) : std::string())
              << ",\"lr\":" << json_number(lr) << ",\"grad_norm\":" << json_number(gnorm)
              << ",\"bytes_per_s\":" << json_number(std::round(report.bytes_per_s)) << "}\n" << std::flush;
    bool saved = done % t.eval_every == 0 || done == t.steps ||  // evaluated and checkpointed at this step
                 (t.eval_seconds > 0 && secs - last_eval_secs >= t.eval_seconds);
    if (saved) {
      last_eval_secs = secs;
      evaluate(done);
      save_checkpoint(ckpt, *model, *opt, cfg, done);
    }
    bar.update(done, progress_detail(loss, report));
    // Training time includes the periodic evaluations and checkpoints, but not the stopping ones below.
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (interrupt_requested) {  // Ctrl-C: keep the work done so far
      if (!saved) save_checkpoint(ckpt, *model, *opt, cfg, done);
      report.interrupted = true;
      step = done;
      break;
    }
    // Unlike Ctrl-C (where the user wants out now) the time limit evaluates, so the run ends with a val_bpb of
    // its last step.
    if (job.max_seconds > 0 && report.seconds >= job.max_seconds && done < end) {
      if (!saved) {
        evaluate(done);
        save_checkpoint(ckpt, *model, *opt, cfg, done);
      }
      report.time_limit = true;
      step = done;
      break;
    }
  }
  report.step = step;
  if (end > first_step) bar.finish(step, progress_detail(last_loss, report));
  return report;
}

}  // namespace bytelm
