// Writing a file so that a crash never leaves it half-written: the bytes go to
// path + ".tmp", are fsynced, and the temp file is renamed over `path`.
#pragma once
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace bytelm {

// The file's bytes are the pieces in order (so large buffers need not be joined
// first). On any failure the temp file is removed, `path` is left as it was,
// and Error says "cannot write <what> <path> ...".
void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& pieces,
                       const std::string& what);
inline void write_file_atomic(const std::string& path, const std::string& text, const std::string& what) {
  write_file_atomic(path, {{text.data(), text.size()}}, what);
}

}  // namespace bytelm
