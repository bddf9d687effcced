// One exception type for every user-facing failure: its message is printed as a
// single line by the CLI ("bytelm: error: <message>"), so keep it to one line
// that names the file, key or value at fault.
#pragma once
#include <stdexcept>
#include <string>

namespace bytelm {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace bytelm
