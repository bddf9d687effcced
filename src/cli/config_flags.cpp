#include "cli/commands.h"
#include "cli/args.h"
#include "core/error.h"
#include "core/json.h"

namespace bytelm {

std::string flag_of(std::string key) {
  for (char& c : key)
    if (c == '_') c = '-';
  return key;
}

RunConfig config_from_flags(const Args& args, const std::vector<std::string>& keys) {
  if (args.has("preset") && args.has("config")) throw Error("give --preset or --config, not both");
  RunConfig cfg = preset(args.get("preset", "ssm-2m"));
  if (args.has("config")) {
    cfg = RunConfig{};
    apply_config_json(cfg, json_parse_file(args.get("config")), args.get("config"));
  }
  for (const std::string& key : keys)
    if (args.has(flag_of(key))) set_config_key(cfg, key, args.get(flag_of(key)), "--" + flag_of(key));
  return cfg;
}

}  // namespace bytelm
