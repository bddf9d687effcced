// Minimal JSON: a value type, a strict parser and the two writer helpers the
// project needs (quoting strings, formatting numbers). Objects keep file order.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bytelm {

struct Json {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Json> array;
  std::vector<std::pair<std::string, Json>> object;  // keeps file order

  // nullptr if the key is absent or this is not an object.
  const Json* find(std::string_view key) const;
  // Typed accessors; `what` names the value in the error, e.g. "config.json: n_layer".
  double as_number(std::string_view what) const;
  int64_t as_int(std::string_view what) const;  // rejects non-integers
  const std::string& as_string(std::string_view what) const;
  bool as_bool(std::string_view what) const;
};

// `what` names the source (e.g. a file name); errors give line:column.
// Rejects trailing garbage and duplicate object keys.
Json json_parse(std::string_view text, std::string_view what);
Json json_parse_file(const std::string& path);

// "..." with JSON escapes; control characters as \u00XX.
std::string json_quote(std::string_view s);
// Shortest round-trip representation; integers without ".0"; NaN/inf -> null.
std::string json_number(double v);

}  // namespace bytelm
