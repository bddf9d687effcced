// What the tests of file-reading code share (corpus, safetensors, JSON): a scratch directory of their own, removed
// at the end, and the message of the Error a call throws, so a test can hold the message to what a user needs.
#pragma once
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <string>

#include "core/error.h"

namespace bytelm::testing {

struct TempDir {
  std::string path;
  TempDir() {
    std::string pattern = ::testing::TempDir() + "/bytelm_XXXXXX";
    path = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// The message of the bytelm::Error f throws, or "<no error>".
inline std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace bytelm::testing
