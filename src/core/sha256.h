// SHA-256 (FIPS 180-4): the content hash that names a model inside a compressed archive and checks the bytes
// that come back out of it.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace bytelm {

using Sha256Digest = std::array<uint8_t, 32>;

// Incremental: update() any number of times, then digest() once.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  Sha256Digest digest();

 private:
  void compress(const uint8_t* block);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buffered_ = 0;
  uint64_t total_ = 0;  // bytes fed so far
};

Sha256Digest sha256(const void* data, size_t n);
std::string to_hex(const uint8_t* bytes, size_t n);  // lower-case, two digits a byte

}  // namespace bytelm
