#include "cli/args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "core/error.h"

namespace bytelm {

// An option's help in lines of at most 80 characters (its own line breaks kept), each after the first indented to
// the help column (26), so a long help reads as a block beside its flag.
static std::string wrap_help(const std::string& help) {
  const std::string indent = "\n" + std::string(26, ' ');
  std::string out;
  std::istringstream paragraphs(help);
  for (std::string para; std::getline(paragraphs, para);) {
    if (!out.empty()) out += indent;
    std::istringstream words(para);
    std::string line;
    for (std::string word; words >> word;) {
      if (!line.empty() && line.size() + 1 + word.size() > 80) {
        out += line + indent;
        line.clear();
      }
      line += (line.empty() ? "" : " ") + word;
    }
    out += line;
  }
  return out;
}

std::string Command::help_text() const {
  std::string s = "usage: bytelm " + name + " " + usage + "\n\n" + summary + "\n";
  if (!details.empty()) s += "\n" + details + "\n";
  s += "\noptions:\n";
  for (const Flag& f : flags) {
    std::string left = "  --" + f.name + (f.value.empty() ? "" : " " + f.value);
    if (left.size() < 26) left.resize(26, ' ');
    else left += "\n" + std::string(26, ' ');
    s += left + wrap_help(f.help) + "\n";
  }
  s += "  --help                  show this help\n";
  return s;
}

Args Args::parse(const Command& cmd, int argc, char** argv, int positional) {
  Args a;
  a.command_ = cmd.name;
  for (int i = 0; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      a.help = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      if ((int)a.positional_.size() >= positional)
        throw Error(cmd.name + ": unexpected argument '" + arg + "' (see bytelm " + cmd.name + " --help)");
      a.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    size_t eq = name.find('=');
    bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const Flag* flag = nullptr;
    for (const Flag& f : cmd.flags)
      if (f.name == name) flag = &f;
    if (!flag) throw Error(cmd.name + ": unknown option --" + name + " (see bytelm " + cmd.name + " --help)");
    if (!flag->value.empty() && !inline_value) {
      if (i + 1 >= argc) throw Error(cmd.name + ": --" + name + " needs a value (" + flag->value + ")");
      value = argv[++i];
    }
    if (flag->value.empty()) value = "1";
    a.values_[name].push_back(value);
  }
  return a;
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> Args::get_all(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::string Args::require(const std::string& name) const {
  if (!has(name)) throw Error(command_ + ": --" + name + " is required (see bytelm " + command_ + " --help)");
  return get(name);
}

int Args::get_int(const std::string& name, int fallback) const {
  if (!has(name)) return fallback;
  std::string v = get(name);
  char* end = nullptr;
  errno = 0;
  long x = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end || errno || x < -2147483647L || x > 2147483647L)
    throw Error(command_ + ": --" + name + " expects an integer, got '" + v + "'");
  return (int)x;
}

double Args::get_double(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  std::string v = get(name);
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !std::isfinite(x)) throw Error(command_ + ": --" + name + " expects a number, got '" + v + "'");
  return x;
}

}  // namespace bytelm
