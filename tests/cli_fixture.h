// The bytelm binary run as a user runs it, for the tests of its commands: each test gets a fresh temp
// directory, run() returns the exit code, stdout and stderr, and expect_clean_error() holds a failure to one
// clear line.
#pragma once
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace bytelm::testing {

namespace fs = std::filesystem;

struct Result {
  int code;
  std::string out, err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("bytelm_cli_" + std::to_string(::getpid()) + "_" +
                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  // `timeout_s` > 0 kills the command after that long (exit 124), so a run that should stop by itself fails, not hangs.
  // `stdin_path` is what the command reads on stdin.
  Result run(const std::string& args, int timeout_s = 0, const std::string& stdin_path = "/dev/null") {
    std::string out = (dir / "stdout").string(), err = (dir / "stderr").string();
    std::string limit = timeout_s > 0 ? "timeout " + std::to_string(timeout_s) + " " : "";
    std::string cmd = "OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE " + limit + std::string(BYTELM_BINARY) + " " + args + " >" + out + " 2>" + err + " <" + stdin_path;
    int status = std::system(cmd.c_str());
    Result r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
    fs::remove(out);
    fs::remove(err);
    return r;
  }
  std::string file(const std::string& name, const std::string& content) {
    std::string p = (dir / name).string();
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  // A failure: non-zero exit, exactly one line on stderr containing `words`, nothing on stdout.
  void expect_clean_error(const Result& r, const std::string& words) {
    EXPECT_NE(r.code, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(words), std::string::npos) << "expected '" << words << "' in: " << r.err;
    EXPECT_EQ(r.out, "");
  }
  std::string tiny_train(const std::string& data, const std::string& out, const std::string& extra = "") {
    return "train --d 16 --layers 1 --steps 2 --batch 2 --seq 32 --eval-bytes 64 --quiet --data " + data + " --out " + out +
           " " + extra;
  }
  // A small trained checkpoint for the eval/generate/corruption tests.
  std::string checkpoint() {
    std::string out = (dir / "run").string();
    std::string text;
    for (int i = 0; i < 200; i++) text += "the quick brown fox jumps over the lazy dog. ";
    Result r = run(tiny_train(file("text.txt", text), out));
    EXPECT_EQ(r.code, 0) << r.err;
    return out + "/checkpoint.safetensors";
  }
  fs::path dir;
};

}  // namespace bytelm::testing
