// The bytelm binary as a user meets it: bad input gets one clear line on
// stderr and a non-zero exit, and leaves no files behind.
#include "cli_fixture.h"
#include "core/git_commit.h"
#include "model_testing.h"

namespace {

using namespace bytelm::testing;

TEST_F(Cli, HelpTeaches) {
  for (const char* c : {"train", "eval", "score", "generate", "info", "leakcheck", "compare", "bench", "compress",
                        "bench-attention", "bench-gemm", "quantize"}) {
    Result r = run(std::string(c) + " --help");
    EXPECT_EQ(r.code, 0) << c;
    EXPECT_NE(r.out.find("usage: bytelm"), std::string::npos) << c;
    EXPECT_NE(r.out.find("--"), std::string::npos) << c;
    // the options read as a table: each line fits a terminal, and a help's later lines keep its column
    std::istringstream lines(r.out.substr(r.out.find("\noptions:\n")));
    for (std::string line; std::getline(lines, line);) {
      EXPECT_LE(line.size(), 110u) << c << ": " << line;
      if (line.size() > 2 && line.rfind("  --", 0) != 0 && line != "options:") {
        EXPECT_EQ(line.find_first_not_of(' '), 26u) << c << ": " << line;
      }
    }
  }
  Result r = run("");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("commands:"), std::string::npos);
  // --version names the build's commit (scripts record it beside their figures)
  Result v = run("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_EQ(v.out, std::string("bytelm ") + bytelm_git_commit + "\n");
}

// bench-gemm's shapes are read before anything touches a GPU: a malformed list is one clear line anywhere.
TEST_F(Cli, BenchGemmShapesAreChecked) {
  for (const char* bad : {"1x2", "8x8x8x", "8x8", "axbxc", "8x8x8,,"}) {
    SCOPED_TRACE(bad);
    expect_clean_error(run(std::string("bench-gemm --shapes ") + bad), "--shapes takes comma-separated MxNxK");
  }
}

// --tune-products (train, bench) is taken everywhere and changes nothing off the GPU: the same run either way.
TEST_F(Cli, TuneProductsIsAcceptedAndOnTheCpuChangesNothing) {
  std::string data = file("text.txt", std::string(4000, 'a') + "the quick brown fox jumps over the lazy dog\n");
  Result plain = run(tiny_train(data, (dir / "plain").string()));
  Result tuned = run(tiny_train(data, (dir / "tuned").string(), "--tune-products"));
  ASSERT_EQ(plain.code, 0) << plain.err;
  ASSERT_EQ(tuned.code, 0) << tuned.err;
  auto val_bpb = [](const std::string& out) { return out.substr(out.find("\"val_bpb\""), 30); };
  EXPECT_EQ(val_bpb(plain.out), val_bpb(tuned.out));
  Result bench = run("bench --d 16 --layers 1 --batch 2 --seq 32 --warmup 0 --steps 1 --tune-products");
  EXPECT_EQ(bench.code, 0) << bench.err;
  EXPECT_NE(bench.out.find("\"bytes_per_s\""), std::string::npos);
  EXPECT_NE(bench.out.find("\"tune_products\":true"), std::string::npos) << bench.out;  // the JSON says how it ran
}

TEST_F(Cli, MissingData) {
  std::string out = (dir / "out").string();
  expect_clean_error(run(tiny_train((dir / "nope.txt").string(), out)), "does not exist");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(Cli, EmptyData) {
  std::string out = (dir / "out").string();
  expect_clean_error(run(tiny_train(file("empty.txt", ""), out)), "empty");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(Cli, UnreadableData) {
  std::string out = (dir / "out").string();
  std::string fifo = (dir / "fifo").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  expect_clean_error(run(tiny_train(fifo, out)), "fifo");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(Cli, UnreadableDataPermission) {
  std::string out = (dir / "out").string();
  if (geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode: the permission case cannot be staged";
  std::string locked = file("locked.txt", "some bytes");
  chmod(locked.c_str(), 0);
  expect_clean_error(run(tiny_train(locked, out)), "locked.txt");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(Cli, SequenceLongerThanData) {
  std::string out = (dir / "out").string();
  expect_clean_error(run(tiny_train(file("short.txt", std::string(30, 'a')), out)), "seq 32");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(Cli, UnknownConfigKey) {
  std::string out = (dir / "out").string();
  std::string cfg = file("cfg.json", "{\"d\": 16, \"layerz\": 2}");
  Result r = run("train --config " + cfg + " --data " + file("t.txt", std::string(500, 'x')) + " --out " + out);
  expect_clean_error(r, "unknown key 'layerz'");
  EXPECT_FALSE(fs::exists(out));
  expect_clean_error(run("train --bogus 3 --data x --out " + out), "unknown option --bogus");
  expect_clean_error(run("train --preset ssm-huge --data x --out " + out), "unknown preset");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(Cli, TrainEvalScoreGenerateWork) {
  std::string ck = checkpoint();
  std::string text = file("probe.txt", "the lazy dog. the quick fox.");
  Result e = run("eval --ckpt " + ck + " --data " + text);
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("\"bpb\":"), std::string::npos);
  EXPECT_NE(e.out.find("\"bytes\":28"), std::string::npos) << e.out;
  Result s = run("score --ckpt " + ck + " --input " + text);
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(std::count(s.out.begin(), s.out.end(), '\n'), 28);
  EXPECT_EQ(s.out.substr(0, 9), "8.000000\n");
  Result g = run("generate --ckpt " + ck + " --prompt 'the ' --bytes 40 --seed 3");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.out.size(), 44u);
  EXPECT_EQ(run("generate --ckpt " + ck + " --prompt 'the ' --bytes 40 --seed 3").out, g.out) << "same seed, same bytes";
}

TEST_F(Cli, TruncatedCheckpoint) {
  std::string ck = checkpoint();
  std::string bytes = slurp(ck);
  std::string cut = file("cut.safetensors", bytes.substr(0, bytes.size() / 2));
  expect_clean_error(run("eval --ckpt " + cut + " --data " + ck), "truncated");
  expect_clean_error(run("generate --ckpt " + file("tiny.safetensors", "abc")), "tiny.safetensors");
}

TEST_F(Cli, CorruptCheckpoint) {
  std::string ck = checkpoint();
  std::string bytes = slurp(ck);
  bytes[bytes.size() - 100] ^= 0x10;
  std::string bad = file("bad.safetensors", bytes);
  expect_clean_error(run("eval --ckpt " + bad + " --data " + ck), "corrupt");
}

TEST_F(Cli, CheckpointOfAnotherArchitecture) {
  std::string ck = checkpoint();
  std::string bytes = slurp(ck);
  // same file with the architecture name swapped in the header (same length keeps offsets valid)
  size_t at = bytes.find("\\\"model\\\":\\\"ssm\\\"");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at + 12, 3, "rwk");
  std::string other = file("other.safetensors", bytes);
  expect_clean_error(run("eval --ckpt " + other + " --data " + ck), "'rwk' model");
  // and a safetensors file that is not a bytelm checkpoint at all
  std::string foreign = file("foreign.safetensors", std::string("\x10\0\0\0\0\0\0\0{}              ", 24));
  expect_clean_error(run("eval --ckpt " + foreign + " --data " + ck), "not a bytelm checkpoint");
  // resuming with a model flag that contradicts the checkpoint
  expect_clean_error(run("train --resume " + (dir / "run").string() + " --d 32"), "only --steps may change");
}

TEST_F(Cli, ResumeExtendsARun) {
  std::string ck = checkpoint();
  Result r = run("train --resume " + (dir / "run").string() + " --steps 4 --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"step\":4"), std::string::npos) << r.out;
  expect_clean_error(run("train --resume " + (dir / "run").string() + " --quiet"), "already finished 4 steps");
}

TEST_F(Cli, InterruptSavesACheckpointToResumeFrom) {
  std::string text;
  for (int i = 0; i < 100; i++) text += "an interrupted run keeps its work. ";
  std::string data = file("text.txt", text), out = (dir / "run").string();
  std::string cmd = std::string(BYTELM_BINARY) + " train --d 16 --layers 1 --batch 2 --seq 32 --steps 1000000 --eval-every 1000000 --quiet --data " +
                    data + " --out " + out + " >/dev/null 2>" + (dir / "err").string() + " & pid=$!; " +
                    "for i in $(seq 100); do [ -f " + out + "/run.json ] && break; sleep 0.1; done; sleep 1; kill -INT $pid; wait $pid";
  int status = std::system(("bash -c '" + cmd + "'").c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130) << slurp((dir / "err").string());
  EXPECT_NE(slurp((dir / "err").string()).find("--resume"), std::string::npos);
  ASSERT_TRUE(fs::exists(out + "/checkpoint.safetensors"));
  // the checkpoint holds the step reached; resuming runs on from it
  Result r = run("train --resume " + out + " --steps 1 --quiet");
  expect_clean_error(r, "already finished");
}

TEST_F(Cli, MaxSecondsStopsEarlyWithAnEvaluatedCheckpoint) {
  std::string text;
  for (int i = 0; i < 100; i++) text += "a run with a time limit ends on time. ";
  std::string data = file("text.txt", text), out = (dir / "run").string();
  // A million steps would take many minutes: only --max-seconds can end this run in time (else timeout's 124).
  // --eval-every past the end means the only validation is the one the time limit makes.
  Result r = run("train --d 16 --layers 1 --batch 2 --seq 32 --steps 1000000 --eval-every 1000000 --eval-bytes 64 --quiet "
                 "--max-seconds 0.5 --data " + data + " --out " + out, 30);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("time limit"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--resume " + out), std::string::npos) << r.err;
  // the summary names the stopping step and its val_bpb ...
  size_t at = r.out.find("{\"step\":"), bpb_at = r.out.find(",\"val_bpb\":");
  ASSERT_EQ(at, 0u) << r.out;
  ASSERT_NE(bpb_at, std::string::npos) << r.out;
  int step = std::stoi(r.out.substr(8));
  std::string val_bpb = r.out.substr(bpb_at + 11, r.out.find(',', bpb_at + 1) - (bpb_at + 11));
  EXPECT_GT(step, 0);
  EXPECT_LT(step, 1000000);
  EXPECT_GT(std::stod(val_bpb), 0.0) << r.out;
  // ... which metrics.jsonl logged at that step ...
  std::string metrics = slurp(out + "/metrics.jsonl");
  std::string line = "{\"step\":" + std::to_string(step) + ",\"val_bpb\":" + val_bpb + "}\n";
  EXPECT_NE(metrics.find(line), std::string::npos) << "no " << line << "in:\n" << metrics.substr(metrics.size() - std::min<size_t>(metrics.size(), 400));
  // ... and the checkpoint holds that step: resuming to it is already done
  expect_clean_error(run("train --resume " + out + " --steps " + std::to_string(step) + " --quiet"),
                     "already finished " + std::to_string(step) + " steps");
  expect_clean_error(run("train --resume " + out + " --max-seconds -1 --quiet"), "--max-seconds must be >= 0");
}

TEST_F(Cli, PatchingAttnTrainsAndBadPatchingIsOneLine) {
  std::string text;
  for (int i = 0; i < 200; i++) text += "the quick brown fox jumps over the lazy dog. ";
  std::string data = file("text.txt", text), out = (dir / "run").string();
  Result r = run("train --preset ssm-demo --patching attn --patch 2 --steps 3 --batch 2 --seq 32 --eval-bytes 64"
                 " --quiet --data " + data + " --out " + out, 60);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(slurp(out + "/checkpoint.safetensors").find("patch.query"), std::string::npos);
  Result e = run("eval --ckpt " + out + " --data " + data);  // the checkpoint rebuilds the attn model
  ASSERT_EQ(e.code, 0) << e.err;
  Result i = run("info --preset ssm-demo --patching attn --patch 2");
  ASSERT_EQ(i.code, 0) << i.err;
  EXPECT_NE(i.out.find("\"patching\":\"attn\""), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("\"params\":461312"), std::string::npos) << i.out;  // ssm-demo's 461,184 and the query
  std::string other = (dir / "other").string();
  expect_clean_error(run(tiny_train(data, other, "--patching bogus")),
                     "patching must be mean, attn, none, local, soft or entropy");
  expect_clean_error(run(tiny_train(data, other, "--patching entropy --entropy-threshold 9")),
                     "entropy_threshold must be in [0, 8) bits");
  expect_clean_error(run(tiny_train(data, other, "--patching none --patch 2")), "patch must be 1");
  EXPECT_FALSE(fs::exists(other));
}

// Each learned patching trains, evaluates its checkpoint (which rebuilds it) and generates through its streams.
TEST_F(Cli, PatchingVariantsTrainEvaluateAndGenerate) {
  std::string text;
  for (int i = 0; i < 200; i++) text += "the quick brown fox jumps over the lazy dog. ";
  std::string data = file("text.txt", text);
  for (std::string patching : {"local", "soft", "entropy"}) {
    std::string out = (dir / patching).string();
    Result r = run(tiny_train(data, out, "--patch 3 --patching " + patching + " --entropy-threshold 7.5"), 60);
    ASSERT_EQ(r.code, 0) << patching << ": " << r.err;
    EXPECT_NE(r.out.find("\"val_bpb\""), std::string::npos) << r.out;
    Result e = run("eval --ckpt " + out + " --data " + data);
    ASSERT_EQ(e.code, 0) << patching << ": " << e.err;
    EXPECT_NE(e.out.find("\"bpb\""), std::string::npos) << e.out;
    Result g = run("generate --ckpt " + out + " --prompt 'the ' --bytes 20 --seed 3");
    ASSERT_EQ(g.code, 0) << patching << ": " << g.err;
    EXPECT_EQ(g.out.size(), 24u) << g.out;  // the prompt and 20 bytes
  }
}

TEST_F(Cli, RefusesToOverwriteARun) {
  std::string ck = checkpoint();
  std::string before = slurp(ck);
  expect_clean_error(run(tiny_train((dir / "text.txt").string(), (dir / "run").string())), "already holds a run");
  EXPECT_EQ(slurp(ck), before);
}

TEST_F(Cli, CompareTrainsEachRunAndPrintsATable) {
  std::string data = std::string(BYTELM_SOURCE_DIR) + "/data/tinyshakespeare.txt", out = (dir / "study").string();
  std::string tiny = "ssm-demo,d=16,layers=1,seq=32,batch=4,eval_bytes=4096";
  Result r = run("compare --quiet --seconds 0.3 --data " + data + " --out " + out + " --run p1=" + tiny +
                 " --run p2=" + tiny + ",patch=2", 30);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // --quiet
  // a header, a row per run in order, the path of the JSON lines
  std::istringstream lines(r.out);
  std::string header, p1, p2, path;
  std::getline(lines, header);
  std::getline(lines, p1);
  std::getline(lines, p2);
  std::getline(lines, path);
  EXPECT_EQ(header.rfind("name  params  steps  bytes/s  best val bpb  final val bpb  leakcheck", 0), 0u) << r.out;
  EXPECT_EQ(p1.rfind("p1 ", 0), 0u) << r.out;
  EXPECT_EQ(p2.rfind("p2 ", 0), 0u) << r.out;
  EXPECT_NE(p1.find(" pass"), std::string::npos) << r.out;
  EXPECT_EQ(path, out + "/compare.jsonl");
  std::string table = slurp(path);
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 2) << table;
  // steps=1000000 unless a run sets it, so the clock ended both runs; and validation every --seconds/10 seconds,
  // not every 100 steps
  EXPECT_NE(table.find("\"steps\":1000000"), std::string::npos) << table;
  EXPECT_NE(table.find("\"eval_every\":1000000,\"eval_seconds\":0.03,"), std::string::npos) << table;
  EXPECT_TRUE(fs::exists(out + "/p2/checkpoint.safetensors"));
  // the same --out again is refused, and the study stays as it was
  expect_clean_error(run("compare --quiet --seconds 0.3 --data " + data + " --out " + out + " --run p3=" + tiny),
                     "already holds a comparison");
  EXPECT_EQ(slurp(path), table);
}

// A study run in pieces: two compares into two directories, then --table prints their rows as one table.
TEST_F(Cli, CompareTablePutsPiecesOfAStudyTogether) {
  std::string data = std::string(BYTELM_SOURCE_DIR) + "/data/tinyshakespeare.txt";
  std::string a = (dir / "a").string(), b = (dir / "b").string();
  std::string tiny = "ssm-demo,d=16,layers=1,seq=32,batch=4,eval_bytes=4096";
  std::string common = "compare --quiet --seconds 0.2 --data " + data;
  ASSERT_EQ(run(common + " --out " + a + " --run mean=" + tiny, 30).code, 0);
  ASSERT_EQ(run(common + " --out " + b + " --run none=" + tiny + ",patch=1 --run attn=" + tiny + ",patch=2,patching=attn", 30).code, 0);
  Result r = run("compare --table " + a + "/compare.jsonl --table " + b + "/compare.jsonl");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::vector<std::string> got;
  for (std::string line; std::getline(lines, line);) got.push_back(line);
  ASSERT_EQ(got.size(), 4u) << r.out;  // the header and the three rows, in the order given; nothing trained
  EXPECT_EQ(got[0].rfind("name  ", 0), 0u) << r.out;
  EXPECT_EQ(got[1].rfind("mean ", 0), 0u) << r.out;
  EXPECT_EQ(got[2].rfind("none ", 0), 0u) << r.out;
  EXPECT_EQ(got[3].rfind("attn ", 0), 0u) << r.out;
  EXPECT_NE(got[3].find(" pass"), std::string::npos) << r.out;
  EXPECT_NE(got[0].find("leakcheck  commit"), std::string::npos) << r.out;  // and the device after it
  EXPECT_NE(got[0].find(" device"), std::string::npos) << r.out;
  EXPECT_NE(got[3].find(std::string(" ") + bytelm_git_commit + " "), std::string::npos) << r.out;
  EXPECT_NE(got[3].find(" cpu"), std::string::npos) << r.out;
  expect_clean_error(run("compare --table " + a + "/compare.jsonl --table " + a + "/compare.jsonl"),
                     "a run named 'mean' is in");
  expect_clean_error(run("compare --table " + (dir / "nope.jsonl").string()), "no such file");
  expect_clean_error(run("compare --table " + a + "/compare.jsonl --run x=ssm-demo"), "takes no --run");
}

TEST_F(Cli, CompareRunSpecErrors) {
  std::string data = std::string(BYTELM_SOURCE_DIR) + "/data/tinyshakespeare.txt", out = (dir / "study").string();
  std::string common = "compare --quiet --seconds 1 --data " + data + " --out " + out;
  expect_clean_error(run(common + " --run ssm-demo"), "--run expects NAME=PRESET");
  // an unknown key or preset is caught while parsing, before any run trains
  expect_clean_error(run(common + " --run a=ssm-demo --run b=ssm-demo,paatch=1"), "--run b: unknown key 'paatch'");
  expect_clean_error(run(common + " --run a=ssm-3m"), "--run a: unknown preset 'ssm-3m'");
  expect_clean_error(run(common + " --run a=ssm-demo,patch"), "expected key=value");
  expect_clean_error(run(common), "at least one --run");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(Cli, NoTempFilesLeftBehind) {
  checkpoint();
  for (const auto& e : fs::recursive_directory_iterator(dir))
    EXPECT_NE(e.path().extension(), ".tmp") << e.path();
}

}  // namespace

// The transformer and hybrid families from the command line: train, eval (plain and sliding-window), score,
// generate (on the GPU too where there is one); bad family keys are one line.
TEST_F(Cli, TransformerAndHybridTrainEvalScoreGenerate) {
  std::string text;
  for (int i = 0; i < 100; i++) text += "the quick brown fox jumps over the lazy dog. ";
  std::string data = file("text.txt", text), probe = file("probe.txt", "ROMEO: the lazy dog.");
  for (std::string family : {"transformer", "hybrid"}) {
    std::string out = (dir / family).string();
    std::string keys = family == "hybrid" ? " --hybrid-layers sa --conv-len 8" : " --smear 0 --softcap 15";
    Result t = run(tiny_train(data, out, "--preset " + family + "-10m --layers 2 --head-dim 8" + keys));
    ASSERT_EQ(t.code, 0) << family << ": " << t.err;
    Result e = run("eval --ckpt " + out + " --data " + probe);
    ASSERT_EQ(e.code, 0) << e.err;
    EXPECT_NE(e.out.find("\"bytes\":20"), std::string::npos) << e.out;
    Result sliding = run("eval --ckpt " + out + " --data " + probe + " --window 8 --stride 3");
    ASSERT_EQ(sliding.code, 0) << sliding.err;
    EXPECT_NE(sliding.out.find("\"bytes\":20"), std::string::npos) << sliding.out;
    EXPECT_NE(sliding.out, e.out);
    Result s = run("score --ckpt " + out + " --input " + probe + " --window 8 --stride 2");
    ASSERT_EQ(s.code, 0) << s.err;
    EXPECT_EQ(std::count(s.out.begin(), s.out.end(), '\n'), 20);
    Result g = run("generate --ckpt " + out + " --prompt 'ROMEO:' --bytes 40 --seed 3");
    ASSERT_EQ(g.code, 0) << g.err;
    EXPECT_EQ(g.out.size(), 46u);
    // on the GPU the same checkpoint evaluates; a build or machine without one says so in one line
    Result cuda = run("eval --device cuda --ckpt " + out + " --data " + probe);
    if (have_gpu()) {
      ASSERT_EQ(cuda.code, 0) << cuda.err;
      EXPECT_NE(cuda.out.find("\"bytes\":20"), std::string::npos) << cuda.out;
    } else {
      expect_clean_error(cuda, "CUDA");
    }
  }
  std::string ckpt = (dir / "transformer").string();
  expect_clean_error(run("eval --ckpt " + ckpt + " --data " + probe + " --window 8 --stride 9"), "--stride must be in 1..window (8)");
  expect_clean_error(run("eval --ckpt " + ckpt + " --data " + probe + " --window 8 --seq 8"), "--window is another name for --seq");
  expect_clean_error(run(tiny_train(data, (dir / "bad").string(), "--preset hybrid-10m --layers 2 --head-dim 8 --hybrid-layers sx")),
                     "hybrid_layers takes the letters a (attention) and s (long convolution)");
  expect_clean_error(run(tiny_train(data, (dir / "bad").string(), "--preset transformer-10m --head-dim 5")),
                     "head_dim must be even");
  EXPECT_FALSE(fs::exists(dir / "bad"));
}
