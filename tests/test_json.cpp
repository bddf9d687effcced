#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>

#include "core/error.h"
#include "core/json.h"
#include "file_testing.h"

using namespace bytelm;
using bytelm::testing::error_message;

TEST(Json, ParsesNestedDocumentKeepingKeyOrder) {
  Json doc = json_parse(R"( {"z": 1, "a": [true, false, null, -2.5e3, "s"], "m": {"k": {}}} )", "doc");
  ASSERT_EQ(doc.kind, Json::Kind::Object);
  ASSERT_EQ(doc.object.size(), 3u);
  EXPECT_EQ(doc.object[0].first, "z");
  EXPECT_EQ(doc.object[1].first, "a");
  EXPECT_EQ(doc.object[2].first, "m");
  EXPECT_EQ(doc.find("z")->as_int("z"), 1);
  const Json& a = *doc.find("a");
  ASSERT_EQ(a.array.size(), 5u);
  EXPECT_TRUE(a.array[0].as_bool("a0"));
  EXPECT_FALSE(a.array[1].as_bool("a1"));
  EXPECT_EQ(a.array[2].kind, Json::Kind::Null);
  EXPECT_EQ(a.array[3].as_number("a3"), -2500.0);
  EXPECT_EQ(a.array[4].as_string("a4"), "s");
  EXPECT_EQ(doc.find("m")->find("k")->kind, Json::Kind::Object);
  EXPECT_EQ(doc.find("missing"), nullptr);
  EXPECT_EQ(a.find("z"), nullptr);  // not an object
}

TEST(Json, DecodesEscapesAndUnicode) {
  Json s = json_parse(R"("q\"b\\s\/n\nt\tr\rb\bf\f é\u00e9\u20ac\ud83d\ude00\u0000")", "s");
  using namespace std::string_literals;
  EXPECT_EQ(s.as_string("s"), "q\"b\\s/n\nt\tr\rb\bf\f \xc3\xa9\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0"s);
}

TEST(Json, QuoteRoundTripsEveryByte) {
  std::string all;
  for (int c = 0; c < 256; c++) all += static_cast<char>(c);
  EXPECT_EQ(json_parse(json_quote(all), "q").as_string("q"), all);
  EXPECT_EQ(json_quote("a\x01\"\\\n"), R"("a\u0001\"\\\n")");
  EXPECT_EQ(json_quote("\x1f\x7f"), "\"\\u001f\x7f\"");
}

TEST(Json, NumbersAreShortestAndRoundTrip) {
  EXPECT_EQ(json_number(1.0), "1");
  EXPECT_EQ(json_number(-42.0), "-42");
  EXPECT_EQ(json_number(0.1), "0.1");
  EXPECT_EQ(json_number(std::nan("")), "null");
  EXPECT_EQ(json_number(std::numeric_limits<double>::infinity()), "null");
  for (double v : {1.0 / 3.0, 3e-4, 1e300, 5e-324, -0.0, 123456789012345678.0, 6.02214076e23}) {
    double back = json_parse(json_number(v), "n").as_number("n");
    EXPECT_EQ(std::memcmp(&back, &v, sizeof v), 0) << json_number(v);
  }
}

TEST(Json, RejectsMalformedInput) {
  const char* bad[] = {"",        " ",        "{",           "[1,]",         "{\"a\":1,}",    "01",
                       "1.",      ".5",       "+1",          "-",            "1e",            "tru",
                       "nul",     "\"abc",    "\"\\x\"",     "\"\\u12\"",    "\"\\ud800\"",   "\"\\udc00\"",
                       "\"\\ud800\\u0041\"", "\"\t\"", "1 2", "[1]x",       "{1:2}",         "{\"a\" 1}",
                       "[1 2]",   "1e999",    "{\"a\":1,\"a\":2}", "'a'",   "NaN",           "[",
                       "\"\\"};
  for (const char* text : bad) EXPECT_THROW(json_parse(text, "bad"), Error) << "accepted: " << text;
  EXPECT_THROW(json_parse(std::string(10000, '['), "deep"), Error);
}

TEST(Json, ErrorsNameSourceLineAndColumn) {
  std::string message = error_message([] { json_parse("{\n  \"a\": tru\n}", "cfg.json"); });
  EXPECT_NE(message.find("cfg.json:2:8"), std::string::npos) << message;
  message = error_message([] { json_parse("{\"k\": 1, \"k\": 2}", "cfg.json"); });
  EXPECT_NE(message.find("duplicate key \"k\""), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST(Json, TypedAccessorsReportContext) {
  Json doc = json_parse(R"({"n": 2.5, "i": -7, "big": 1e19, "s": "x"})", "doc");
  EXPECT_EQ(doc.find("i")->as_int("i"), -7);
  EXPECT_NE(error_message([&] { doc.find("n")->as_int("config n"); }).find("config n: expected an integer"),
            std::string::npos);
  EXPECT_THROW(doc.find("big")->as_int("big"), Error);
  EXPECT_NE(error_message([&] { doc.find("s")->as_number("config s"); }).find("config s: expected a number, got a string"),
            std::string::npos);
  EXPECT_THROW(doc.find("i")->as_string("i"), Error);
  EXPECT_THROW(doc.find("i")->as_bool("i"), Error);
}

TEST(Json, ParseFileErrors) {
  bytelm::testing::TempDir tmp;  // its own directory, removed at the end
  std::string dir = tmp.path;
  std::string missing = dir + "/bytelm_no_such_file.json";
  EXPECT_NE(error_message([&] { json_parse_file(missing); }).find(missing), std::string::npos);
  std::string empty = dir + "/bytelm_empty.json";
  std::ofstream(empty).close();
  EXPECT_NE(error_message([&] { json_parse_file(empty); }).find("is empty"), std::string::npos);
  std::string good = dir + "/bytelm_good.json";
  std::ofstream(good) << "{\"x\": [1, 2]}\n";
  EXPECT_EQ(json_parse_file(good).find("x")->array.size(), 2u);
  std::string broken = dir + "/bytelm_broken.json";
  std::ofstream(broken) << "{\"x\": }";
  EXPECT_NE(error_message([&] { json_parse_file(broken); }).find(broken + ":1:7"), std::string::npos);
  for (const std::string& p : {empty, good, broken}) std::remove(p.c_str());
}
