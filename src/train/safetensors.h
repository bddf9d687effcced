// The safetensors file format, for F32, I8 and U8 tensors: 8-byte little-endian header length N,
// N bytes of JSON header (padded with spaces to a multiple of 8), then the raw
// little-endian data; header offsets are relative to the start of the data.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace bytelm {

// A tensor to write; `data` holds product(shape) elements of `dtype` ("F32", "I8" or "U8") and is not owned.
struct TensorRef {
  std::string name;
  std::vector<int64_t> shape;
  const void* data;
  std::string dtype = "F32";
};

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype = "F32";
  std::vector<float> data;     // F32 tensors
  std::vector<uint8_t> bytes;  // I8 and U8 tensors, as stored
  int64_t numel() const;
};

struct Safetensors {
  std::map<std::string, std::string> metadata;
  std::vector<Tensor> tensors;                       // in file order
  const Tensor& get(const std::string& name) const;  // throws Error naming the file and the tensor
  std::string path;                                  // for error messages
};

// Writes `path + ".tmp"`, fsyncs, then renames it over `path`, so a crash never
// leaves a half-written file at `path`; on error the temp file is removed and
// Error thrown. Adds metadata "crc32": CRC-32 of the data section, in decimal.
void safetensors_write(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata);

// Reads and validates the whole file; every defect is a one-line Error. A
// "crc32" metadata entry, when present, is checked against the data section.
Safetensors safetensors_read(const std::string& path);

// CRC-32 as in zlib (IEEE polynomial); pass the previous result as `crc` to continue.
uint32_t crc32_ieee(const void* data, size_t n, uint32_t crc = 0);

}  // namespace bytelm
