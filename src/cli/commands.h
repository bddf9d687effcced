// The bytelm commands: thin shells that parse flags and call the library.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "cli/args.h"
#include "train/config.h"

namespace bytelm {

int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_score(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_bench_attention(int argc, char** argv);
int cmd_bench_gemm(int argc, char** argv);
int cmd_leakcheck(int argc, char** argv);
int cmd_compare(int argc, char** argv);
int cmd_compress(int argc, char** argv);
int cmd_decompress(int argc, char** argv);
int cmd_quantize(int argc, char** argv);

// Applies --threads and returns --device, checked to be cpu or cuda (shared by every command that runs a model).
std::string apply_runtime_flags(const Args& args);

// A config key's flag: the key with '-' for '_' ("eval_every" -> "eval-every").
std::string flag_of(std::string key);
// Every config key a flag can set, with its help line, in the order --help lists them.
const std::vector<std::pair<std::string, std::string>>& config_key_help();
// A key's flag for a Command's table.
Flag key_flag(const std::string& key, const std::string& help);
// The flags of the model's keys (every command that builds a fresh model takes them), `suffix` added to each help.
std::vector<Flag> model_key_flags(const std::string& suffix = "");
// --preset NAME (default ssm-2m) or --config FILE, not both; then each of `keys` from its flag.
RunConfig config_from_flags(const Args& args, const std::vector<std::string>& keys);

}  // namespace bytelm
