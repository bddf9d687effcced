// Training end to end through the library: it learns, it checkpoints, it resumes exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/parallel.h"
#include "model_testing.h"
#include "core/rng.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"
#include "train/trainer.h"

using namespace bytelm;
namespace fs = std::filesystem;

static std::string temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("bytelm_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

static std::string demo_corpus() { return std::string(BYTELM_SOURCE_DIR) + "/data/tinyshakespeare.txt"; }

// A quiet training job on the demo corpus into a fresh temp folder named `name`.
static TrainJob demo_job(const ModelConfig& model, int steps, int batch, int seq, const std::string& name) {
  TrainJob job;
  job.cfg.model = model;
  job.cfg.train.steps = steps;
  job.cfg.train.batch = batch;
  job.cfg.train.seq = seq;
  job.data = demo_corpus();
  job.out = temp_dir(name);
  job.progress = false;
  return job;
}

TEST(Training, OverfitsA200ByteString) {
  std::string text =
      "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
      "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
      "it was the season of Darkness";
  text.resize(200);
  TrainConfig t;
  t.steps = 400;
  t.lr = 1e-2;
  t.warmup = 20;
  t.weight_decay = 0;
  auto m = make_model<float>({"ssm", 64, 2, 2}, 1);
  float loss = bytelm::testing::overfit_loss(*m, text, t);
  EXPECT_LT(loss / std::log(2.0), 0.05) << "bits per byte after " << t.steps << " steps";
}

TEST(Training, ReducesValidationBpbOnDemoCorpus) {
  TrainJob job = demo_job({"ssm", 64, 2, 2}, 150, 8, 128, "reduce");
  job.cfg.train.lr = 1e-2;
  job.cfg.train.eval_every = 150;
  job.cfg.train.eval_bytes = 16384;
  // the untrained model's validation cost, for comparison
  TrainJob zero = job;
  zero.cfg.train.steps = 1;
  zero.cfg.train.lr = 1e-9;
  zero.out = temp_dir("reduce0");
  double before = train(zero).val_bpb;
  TrainReport r = train(job);
  EXPECT_GT(before, 7.0);
  EXPECT_LT(r.val_bpb, 3.8) << "validation bpb went from " << before;
  EXPECT_LT(r.losses.back(), r.losses.front() - 1.0);
  fs::remove_all(job.out);
  fs::remove_all(zero.out);
}

// eval_seconds validates (and checkpoints) by the clock as well as every eval_every steps. A period below any
// step's time makes every step one that validates; eval_seconds 0 leaves eval_every alone (here: only the last).
TEST(Training, EvalSecondsValidatesByTheClock) {
  auto val_lines = [](double eval_seconds) {
    TrainJob job = demo_job({"ssm", 16, 1, 2}, 5, 2, 32, "eval_seconds");
    job.cfg.train.eval_every = 1000;
    job.cfg.train.eval_seconds = eval_seconds;
    job.cfg.train.eval_bytes = 256;
    train(job);
    std::ifstream f(job.out + "/metrics.jsonl");
    int n = 0;
    for (std::string l; std::getline(f, l);) n += l.find("\"val_bpb\"") != std::string::npos;
    fs::remove_all(job.out);
    return n;
  };
  EXPECT_EQ(val_lines(1e-9), 5);
  EXPECT_EQ(val_lines(0), 1);
  RunConfig bad;
  bad.train.eval_seconds = -1;
  EXPECT_THROW(validate(bad), Error);
}

// Entropy patching's objective adds its bigram table's loss (ln 256 nats at the start); the training log and the
// report give the bytes' cross-entropy, which starts near ln 256 as every family's does, and the table's apart.
TEST(Training, EntropyLogsTheBytesLossApart) {
  TrainJob job = demo_job({"ssm", 16, 1, 2, "entropy"}, 3, 2, 32, "entropy_log");
  job.cfg.train.log_every = 1;
  job.cfg.train.eval_bytes = 256;
  TrainReport r = train(job);
  ASSERT_EQ(r.losses.size(), 3u);
  EXPECT_NEAR(r.losses.front(), std::log(256.0), 0.3);
  std::ifstream f(job.out + "/metrics.jsonl");
  std::string first;
  std::getline(f, first);
  EXPECT_NE(first.find("\"extra_loss\":5.54"), std::string::npos) << first;  // ln 256 = 5.545
  fs::remove_all(job.out);
}

TEST(Training, CheckpointRoundTrip) {
  for (std::string patching : {"mean", "attn", "local", "soft", "entropy"}) {
    std::string dir = temp_dir("ckpt");
    fs::create_directories(dir);
    RunConfig cfg;
    cfg.model = {"ssm", 16, 2, 3, patching, 5.5};
    cfg.train.seq = 77;
    auto m = make_model<float>(cfg.model, 5);
    Rng rng(3);
    AdamW opt(m->params().size());
    bytelm::testing::for_each_param_element(*m, [&](size_t i) {
      m->params()[i] += 0.1f * float(rng.normal());  // off the init: the attn query too
      opt.m[i] = float(rng.normal()), opt.v[i] = float(rng.uniform());
    });
    std::string path = dir + "/c.safetensors";
    save_checkpoint(path, *m, opt, cfg, 42);
    LoadedCheckpoint ck = load_checkpoint(path, true);
    EXPECT_EQ(ck.step, 42);
    EXPECT_EQ(ck.cfg.model.d, 16);
    EXPECT_EQ(ck.cfg.model.patch, 3);
    EXPECT_EQ(ck.cfg.model.patching, patching);
    if (patching == "entropy") {  // written for entropy configs only
      EXPECT_EQ(ck.cfg.model.entropy_threshold, 5.5);
    }
    EXPECT_EQ(ck.cfg.train.seq, 77);
    EXPECT_EQ(ck.model->params(), m->params());
    EXPECT_EQ(ck.opt->m, opt.m);
    EXPECT_EQ(ck.opt->v, opt.v);
    // same function: identical losses
    std::vector<uint8_t> x(40), y(40);
    for (int i = 0; i < 40; i++) x[i] = uint8_t(rng.next_u64()), y[i] = uint8_t(rng.next_u64());
    EXPECT_EQ(m->forward(x.data(), y.data(), 2, 20, nullptr), ck.model->forward(x.data(), y.data(), 2, 20, nullptr));
    fs::remove_all(dir);
  }
}

// A checkpoint written before the patching key existed has none in its model config: it loads as mean pooling.
TEST(Training, CheckpointWithoutPatchingLoadsAsMean) {
  std::string dir = temp_dir("ckpt_old");
  fs::create_directories(dir);
  RunConfig cfg;
  cfg.model = {"ssm", 16, 1, 2};
  auto m = make_model<float>(cfg.model, 5);
  AdamW opt(m->params().size());
  std::string path = dir + "/c.safetensors";
  save_checkpoint(path, *m, opt, cfg, 7);
  // rewrite it with the key taken out of the model config, as an older bytelm wrote it
  Safetensors st = safetensors_read(path);
  std::string& model_json = st.metadata["model"];
  size_t at = model_json.find(",\"patching\":\"mean\"");
  ASSERT_NE(at, std::string::npos) << model_json;
  model_json.erase(at, std::string(",\"patching\":\"mean\"").size());
  st.metadata.erase("crc32");
  std::vector<TensorRef> tensors;
  for (const Tensor& t : st.tensors) tensors.push_back({t.name, t.shape, t.data.data()});
  safetensors_write(path, tensors, st.metadata);
  LoadedCheckpoint ck = load_checkpoint(path, true);
  EXPECT_EQ(ck.cfg.model.patching, "mean");
  EXPECT_EQ(ck.model->params(), m->params());
  fs::remove_all(dir);
}

TEST(Training, ResumeGivesTheSameLossCurve) {
  // Two threads, whatever the suite's default: the parallel reductions must be reproducible too.
  int threads_before = thread_count();
  omp_set_num_threads(2);
  TrainJob job = demo_job({"ssm", 32, 2, 2}, 24, 4, 64, "full");
  job.cfg.train.eval_every = 8;
  job.cfg.train.eval_bytes = 4096;
  job.cfg.train.log_every = 1;
  TrainReport full = train(job);
  ASSERT_EQ(full.losses.size(), 24u);

  TrainJob first = job;
  first.out = temp_dir("interrupted");
  first.stop_after = 13;  // "crashes" after step 13; its last checkpoint is at step 8
  TrainReport a = train(first);
  ASSERT_EQ(a.losses.size(), 13u);
  TrainJob second = first;
  second.stop_after = -1;
  second.resume = true;
  TrainReport b = train(second);
  ASSERT_EQ(b.losses.size(), 16u);  // steps 9..24 again from the checkpoint
  for (int i = 0; i < 13; i++) EXPECT_EQ(a.losses[i], full.losses[i]) << "step " << i + 1;
  for (int i = 0; i < 16; i++) EXPECT_EQ(b.losses[i], full.losses[8 + i]) << "step " << 9 + i;
  EXPECT_EQ(b.val_bpb, full.val_bpb);
  // the metrics log of the resumed run reads like the uninterrupted one (lines past the checkpoint dropped)
  auto lines = [](const std::string& dir) {
    std::ifstream f(dir + "/metrics.jsonl");
    std::vector<std::string> v;
    for (std::string l; std::getline(f, l);) v.push_back(l.substr(0, l.find(",\"bytes_per_s\"")));
    return v;
  };
  EXPECT_EQ(lines(job.out), lines(first.out));
  fs::remove_all(job.out);
  fs::remove_all(first.out);
  omp_set_num_threads(threads_before);
}
