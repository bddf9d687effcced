#include "core/json.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace bytelm {

static const char* kind_name(Json::Kind kind) {
  static const char* names[] = {"null", "a boolean", "a number", "a string", "an array", "an object"};
  return names[static_cast<int>(kind)];
}

static Error type_error(std::string_view what, const char* expected, Json::Kind got) {
  return Error(std::string(what) + ": expected " + expected + ", got " + kind_name(got));
}

const Json* Json::find(std::string_view key) const {
  if (kind != Kind::Object) return nullptr;
  for (const auto& [k, v] : object)
    if (k == key) return &v;
  return nullptr;
}

double Json::as_number(std::string_view what) const {
  if (kind != Kind::Number) throw type_error(what, "a number", kind);
  return number;
}

int64_t Json::as_int(std::string_view what) const {
  if (kind != Kind::Number) throw type_error(what, "an integer", kind);
  // 2^63 is exactly representable; anything at or above it does not fit in int64_t.
  if (number != std::floor(number) || number < -9223372036854775808.0 || number >= 9223372036854775808.0)
    throw Error(std::string(what) + ": expected an integer, got " + json_number(number));
  return static_cast<int64_t>(number);
}

const std::string& Json::as_string(std::string_view what) const {
  if (kind != Kind::String) throw type_error(what, "a string", kind);
  return string;
}

bool Json::as_bool(std::string_view what) const {
  if (kind != Kind::Bool) throw type_error(what, "a boolean", kind);
  return boolean;
}

// Escape letters after a backslash and the characters they stand for ("\/" is read but never written).
static constexpr std::string_view kEscapeLetters = "\"\\bfnrt";
static constexpr std::string_view kEscapedChars = "\"\\\b\f\n\r\t";

namespace {

// Recursive descent over the text; `pos` is the next unread byte.
struct Parser {
  std::string_view text;
  std::string_view what;
  size_t pos = 0;
  int depth = 0;
  static constexpr int kMaxDepth = 256;  // bounds recursion on hostile input

  [[noreturn]] void fail(const std::string& message, size_t at) const {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < at && i < text.size(); i++) {
      if (text[i] == '\n') { line++; column = 1; } else { column++; }
    }
    throw Error(std::string(what) + ":" + std::to_string(line) + ":" + std::to_string(column) +
                ": invalid JSON: " + message);
  }
  [[noreturn]] void fail(const std::string& message) const { fail(message, pos); }

  void skip_whitespace() {
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' || text[pos] == '\r'))
      pos++;
  }

  void expect_literal(std::string_view literal) {
    if (text.substr(pos, literal.size()) != literal) fail("unexpected character");
    pos += literal.size();
  }

  Json parse_value() {
    skip_whitespace();
    if (pos >= text.size()) fail("unexpected end of input");
    Json value;
    char c = text[pos];
    if (c == '{') {
      parse_object(value);
    } else if (c == '[') {
      parse_array(value);
    } else if (c == '"') {
      value.kind = Json::Kind::String;
      value.string = parse_string();
    } else if (c == 't') {
      expect_literal("true");
      value.kind = Json::Kind::Bool;
      value.boolean = true;
    } else if (c == 'f') {
      expect_literal("false");
      value.kind = Json::Kind::Bool;
    } else if (c == 'n') {
      expect_literal("null");
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      value.kind = Json::Kind::Number;
      value.number = parse_number();
    } else {
      fail("unexpected character");
    }
    return value;
  }

  void enter() {
    if (++depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
    pos++;  // the opening bracket
    skip_whitespace();
  }

  void parse_object(Json& value) {
    value.kind = Json::Kind::Object;
    enter();
    if (pos < text.size() && text[pos] == '}') { pos++; depth--; return; }
    while (true) {
      skip_whitespace();
      if (pos >= text.size() || text[pos] != '"') fail("expected a string key");
      size_t key_pos = pos;
      std::string key = parse_string();
      for (const auto& member : value.object)
        if (member.first == key) fail("duplicate key " + json_quote(key), key_pos);
      skip_whitespace();
      if (pos >= text.size() || text[pos] != ':') fail("expected ':'");
      pos++;
      Json member = parse_value();
      value.object.emplace_back(std::move(key), std::move(member));
      skip_whitespace();
      if (pos < text.size() && text[pos] == ',') { pos++; continue; }
      if (pos < text.size() && text[pos] == '}') { pos++; depth--; return; }
      fail("expected ',' or '}'");
    }
  }

  void parse_array(Json& value) {
    value.kind = Json::Kind::Array;
    enter();
    if (pos < text.size() && text[pos] == ']') { pos++; depth--; return; }
    while (true) {
      value.array.push_back(parse_value());
      skip_whitespace();
      if (pos < text.size() && text[pos] == ',') { pos++; continue; }
      if (pos < text.size() && text[pos] == ']') { pos++; depth--; return; }
      fail("expected ',' or ']'");
    }
  }

  uint32_t parse_hex4() {
    if (pos + 4 > text.size()) fail("truncated \\u escape");
    uint32_t code = 0;
    for (int i = 0; i < 4; i++) {
      char h = text[pos + i];
      code <<= 4;
      if (h >= '0' && h <= '9') code |= h - '0';
      else if (h >= 'a' && h <= 'f') code |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') code |= h - 'A' + 10;
      else fail("bad hex digit in \\u escape", pos + i);
    }
    pos += 4;
    return code;
  }

  static void append_utf8(std::string& out, uint32_t code) {
    auto byte = [&](uint32_t b) { out += static_cast<char>(b); };
    if (code < 0x80) {
      byte(code);
    } else if (code < 0x800) {
      byte(0xC0 | (code >> 6));
    } else if (code < 0x10000) {
      byte(0xE0 | (code >> 12));
      byte(0x80 | ((code >> 6) & 0x3F));
    } else {
      byte(0xF0 | (code >> 18));
      byte(0x80 | ((code >> 12) & 0x3F));
      byte(0x80 | ((code >> 6) & 0x3F));
    }
    if (code >= 0x80) byte(0x80 | (code & 0x3F));
  }

  std::string parse_string() {
    size_t start = pos;
    pos++;  // opening quote
    std::string out;
    while (true) {
      if (pos >= text.size()) fail("unterminated string", start);
      unsigned char c = static_cast<unsigned char>(text[pos]);
      if (c == '"') { pos++; return out; }
      if (c < 0x20) fail("unescaped control character in string");
      if (c != '\\') { out += static_cast<char>(c); pos++; continue; }
      size_t escape_pos = pos;
      pos++;
      if (pos >= text.size()) fail("unterminated string", start);
      char e = text[pos++];
      if (size_t i = kEscapeLetters.find(e); i != std::string_view::npos) {
        out += kEscapedChars[i];
        continue;
      }
      if (e == '/') {
        out += '/';
        continue;
      }
      if (e != 'u') fail("bad escape in string", escape_pos);
      uint32_t code = parse_hex4();
      if (code >= 0xDC00 && code <= 0xDFFF) fail("lone low surrogate in \\u escape", escape_pos);
      if (code >= 0xD800 && code <= 0xDBFF) {
        if (text.substr(pos, 2) != "\\u") fail("high surrogate not followed by a low surrogate", escape_pos);
        pos += 2;
        uint32_t low = parse_hex4();
        if (low < 0xDC00 || low > 0xDFFF) fail("high surrogate not followed by a low surrogate", escape_pos);
        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
      }
      append_utf8(out, code);
    }
  }

  double parse_number() {
    // Check the strict JSON grammar first: from_chars alone would accept "01", "1." or ".5" variants.
    size_t start = pos;
    auto digit = [&] { return pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; };
    if (text[pos] == '-') pos++;
    if (!digit()) fail("bad number", start);
    if (text[pos] == '0') pos++; else while (digit()) pos++;
    if (pos < text.size() && text[pos] == '.') {
      pos++;
      if (!digit()) fail("bad number", start);
      while (digit()) pos++;
    }
    if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
      pos++;
      if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) pos++;
      if (!digit()) fail("bad number", start);
      while (digit()) pos++;
    }
    double value = 0;
    auto result = std::from_chars(text.data() + start, text.data() + pos, value);
    if (result.ec == std::errc::result_out_of_range) fail("number out of range", start);
    if (result.ec != std::errc() || result.ptr != text.data() + pos) fail("bad number", start);
    return value;
  }
};

}  // namespace

Json json_parse(std::string_view text, std::string_view what) {
  Parser parser{text, what};
  Json value = parser.parse_value();
  parser.skip_whitespace();
  if (parser.pos != text.size()) parser.fail("trailing characters after the value");
  return value;
}

Json json_parse_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Error("cannot open " + path + ": " + std::strerror(errno));
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad()) throw Error("cannot read " + path);
  std::string text = contents.str();
  if (text.empty()) throw Error(path + " is empty (expected JSON)");
  return json_parse(text, path);
}

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (size_t i = kEscapedChars.find(ch); i != std::string_view::npos) {
      out += '\\';
      out += kEscapeLetters[i];
    } else if (c < 0x20) {
      static const char hex[] = "0123456789abcdef";
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 0xF];
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  // to_chars without a format gives the shortest string that parses back to exactly v.
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, v);
  return std::string(buffer, result.ptr);
}

}  // namespace bytelm
