// Command-line flags: `--name value` or `--name` (switches), declared per
// command so that --help is generated from the same table that parses.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace bytelm {

struct Flag {
  std::string name;   // without the leading dashes
  std::string value;  // placeholder shown in --help ("N", "PATH"); empty for a switch
  std::string help;
};

struct Command {
  std::string name, summary, usage, details;
  std::vector<Flag> flags;
  std::string help_text() const;
};

class Args {
 public:
  // Error for an unknown flag, a missing value or a stray positional argument
  // (unless `positional` > 0, the number of positional arguments accepted).
  static Args parse(const Command& cmd, int argc, char** argv, int positional = 0);
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const;  // the last one, if repeated
  // Every value of a flag given more than once (`--run a=... --run b=...`), in command-line order.
  std::vector<std::string> get_all(const std::string& name) const;
  std::string require(const std::string& name) const;  // Error "<cmd>: --name is required"
  int get_int(const std::string& name, int fallback) const;
  double get_double(const std::string& name, double fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }
  bool help = false;

 private:
  std::string command_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

}  // namespace bytelm
