// compare() (train/compare.h): every run trains for the same time into its own directory, the table holds what each
// reached, a failed run is a row with its error and does not stop the others, and a study never overwrites another.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/git_commit.h"
#include "core/json.h"
#include "file_testing.h"
#include "train/compare.h"
#include "train/config.h"

namespace bytelm {
namespace {

namespace fs = std::filesystem;

class Compare : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("bytelm_compare_" + std::to_string(::getpid()) + "_" +
                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  // ssm-demo cut down to train hundreds of steps in a fraction of a second; the clock ends it, not `steps`.
  static CompareRun tiny(const std::string& name, int patch) {
    CompareRun run{name, preset("ssm-demo")};
    run.cfg.model.d = 16;
    run.cfg.model.layers = 1;
    run.cfg.model.patch = patch;
    run.cfg.train.seq = 32;
    run.cfg.train.batch = 4;
    run.cfg.train.eval_bytes = 4096;
    run.cfg.train.steps = 1000000;
    return run;
  }
  CompareJob job(std::vector<CompareRun> runs) const {
    CompareJob j;
    j.runs = std::move(runs);
    j.data = std::string(BYTELM_SOURCE_DIR) + "/data/tinyshakespeare.txt";
    j.out = dir.string();
    j.seconds_per_run = 0.3;
    j.progress = false;
    return j;
  }
  fs::path dir;
};

TEST_F(Compare, TrainsEveryRunAndAFailedOneDoesNotStopTheRest) {
  CompareRun bad = tiny("bad", 1);
  bad.cfg.train.batch = 0;
  std::vector<CompareRow> rows = compare(job({tiny("p1", 1), bad, tiny("p2", 2)}));
  ASSERT_EQ(rows.size(), 3u);
  for (const CompareRow* r : {&rows[0], &rows[2]}) {
    EXPECT_EQ(r->error, "") << r->name;
    EXPECT_EQ(r->family, "ssm");
    EXPECT_EQ(r->params, param_count(r->cfg.model));
    EXPECT_GT(r->steps, 0) << r->name;
    EXPECT_LT(r->steps, 1000000) << r->name;  // the clock ended it
    EXPECT_GT(r->bytes_per_s, 0);
    EXPECT_TRUE(std::isfinite(r->best_val_bpb)) << r->name;
    EXPECT_LE(r->best_val_bpb, r->final_val_bpb);
    EXPECT_EQ(r->leakcheck, "pass");
    EXPECT_TRUE(fs::exists(fs::path(r->run_dir) / "checkpoint.safetensors")) << r->run_dir;
  }
  EXPECT_EQ(rows[0].run_dir, (dir / "p1").string());
  EXPECT_EQ(rows[2].cfg.model.patch, 2);
  EXPECT_NE(rows[1].error.find("batch must be >= 1"), std::string::npos) << rows[1].error;
  EXPECT_EQ(rows[1].steps, 0);
  EXPECT_TRUE(std::isnan(rows[1].best_val_bpb));

  // compare.jsonl: one object a line, in run order, the failed run's numbers null
  std::ifstream in(dir / "compare.jsonl");
  std::string line;
  std::vector<Json> lines;
  while (std::getline(in, line)) lines.push_back(json_parse(line, "compare.jsonl"));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].find("name")->as_string("name"), "p1");
  EXPECT_EQ(lines[0].find("steps")->as_int("steps"), rows[0].steps);
  EXPECT_EQ(lines[0].find("leakcheck")->as_string("leakcheck"), "pass");
  EXPECT_EQ(lines[0].find("commit")->as_string("commit"), std::string(bytelm_git_commit));
  EXPECT_EQ(lines[0].find("device_name")->as_string("device_name").rfind("cpu", 0), 0u) << "the device that ran it";
  EXPECT_EQ(lines[0].find("error")->kind, Json::Kind::Null);
  EXPECT_EQ(lines[2].find("model_config")->find("patch")->as_int("patch"), 2);
  EXPECT_EQ(lines[1].find("best_val_bpb")->kind, Json::Kind::Null);
  EXPECT_NE(lines[1].find("error")->as_string("error").find("batch"), std::string::npos);

  // a second study into the same directory is refused before it writes anything
  EXPECT_THROW(compare(job({tiny("p3", 1)})), Error);
  EXPECT_FALSE(fs::exists(dir / "p3"));
}

// A study's rows read back from its compare.jsonl are the rows compare() returned (numbers to the digits written),
// the failed run's too; a file that is missing, empty or not compare rows is an Error naming it.
TEST_F(Compare, RowsReadBackAsWritten) {
  CompareRun bad = tiny("bad", 1);
  bad.cfg.train.batch = 0;
  std::vector<CompareRow> rows = compare(job({tiny("p1", 2), bad}));
  std::vector<CompareRow> back = read_compare_rows((dir / "compare.jsonl").string());
  ASSERT_EQ(back.size(), rows.size());
  for (size_t i = 0; i < rows.size(); i++) {
    const CompareRow &a = rows[i], &b = back[i];
    EXPECT_EQ(b.name, a.name);
    EXPECT_EQ(b.family, a.family);
    EXPECT_EQ(b.params, a.params);
    EXPECT_EQ(b.steps, a.steps);
    EXPECT_EQ(std::isnan(b.best_val_bpb), std::isnan(a.best_val_bpb));
    if (!std::isnan(a.best_val_bpb)) {
      EXPECT_EQ(b.best_val_bpb, a.best_val_bpb);
    }
    EXPECT_EQ(b.leakcheck, a.leakcheck);
    EXPECT_EQ(b.error, a.error);
    EXPECT_EQ(b.run_dir, a.run_dir);
    EXPECT_EQ(b.commit, a.commit);
    EXPECT_EQ(b.device_name, a.device_name);
    EXPECT_EQ(model_config_json(b.cfg.model), model_config_json(a.cfg.model));
    EXPECT_EQ(train_config_json(b.cfg.train), train_config_json(a.cfg.train));
    EXPECT_EQ(compare_row_json(b), compare_row_json(a)) << "written again, the line is the same";
  }
  EXPECT_NEAR(back[0].bytes_per_s, rows[0].bytes_per_s, 0.5);  // written rounded to a byte
  EXPECT_TRUE(std::isnan(back[1].bytes_per_s) || back[1].steps == 0);

  // a row written before rows recorded their commit and device reads back without them
  std::string old_line = compare_row_json(rows[0]);
  for (const char* key : {",\"commit\":", ",\"device_name\":"}) {
    size_t at = old_line.find(key), end = old_line.find(',', at + 1);
    old_line.erase(at, end - at);
  }
  fs::path old_file = dir / "old.jsonl";
  std::ofstream(old_file) << old_line << "\n";
  std::vector<CompareRow> old_rows = read_compare_rows(old_file.string());
  ASSERT_EQ(old_rows.size(), 1u) << old_line;
  EXPECT_TRUE(old_rows[0].commit.empty() && old_rows[0].device_name.empty());
  EXPECT_EQ(old_rows[0].steps, rows[0].steps);

  auto message = [](const std::string& path) { return testing::error_message([&] { read_compare_rows(path); }); };
  fs::path missing = dir / "nope.jsonl", empty = dir / "empty.jsonl", other = dir / "other.jsonl";
  std::ofstream(empty).close();
  std::ofstream(other) << "{\"name\":\"x\"}\n";
  EXPECT_NE(message(missing.string()).find("nope.jsonl: no such file"), std::string::npos);
  EXPECT_NE(message(empty.string()).find("holds no compare rows"), std::string::npos);
  EXPECT_NE(message(other.string()).find("other.jsonl:1: not a compare row"), std::string::npos) << message(other.string());
}

TEST_F(Compare, RefusesBadNamesBeforeRunningAnything) {
  EXPECT_THROW(compare(job({tiny("a", 1), tiny("a", 2)})), Error);  // one directory for two runs
  EXPECT_THROW(compare(job({tiny("../up", 1)})), Error);
  EXPECT_THROW(compare(job({tiny("", 1)})), Error);
  EXPECT_THROW(compare(job({})), Error);
  EXPECT_FALSE(fs::exists(dir));
}

}  // namespace
}  // namespace bytelm
