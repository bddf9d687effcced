#include "train/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"

namespace bytelm {

// Floats and the header length go to disk as raw host bytes.
static_assert(std::endian::native == std::endian::little, "safetensors is little-endian; add byte swapping");

// The reference implementation refuses headers above 100 MB; anything larger is not a safetensors file.
static constexpr uint64_t kMaxHeaderBytes = 100'000'000;

static const std::array<uint32_t, 256> kCrcTable = [] {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}();

uint32_t crc32_ieee(const void* data, size_t n, uint32_t crc) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; i++) crc = kCrcTable[(crc ^ bytes[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const Tensor& Safetensors::get(const std::string& name) const {
  for (const Tensor& t : tensors)
    if (t.name == name) return t;
  throw Error("checkpoint " + path + " has no tensor '" + name + "'");
}

// The bytes an element of `dtype` takes; 0 for a dtype this file does not handle.
static size_t element_bytes(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "I8" || dtype == "U8") return 1;
  return 0;
}

static std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

void safetensors_write(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Lay out the data section (tensors back to back, in the given order) and checksum it.
  std::string tensor_entries;
  std::vector<uint64_t> byte_sizes;
  std::set<std::string> names;
  uint64_t offset = 0;
  uint32_t crc = 0;
  for (const TensorRef& t : tensors) {
    if (t.name == "__metadata__" || !names.insert(t.name).second)
      throw Error("cannot write checkpoint " + path + ": duplicate or reserved tensor name '" + t.name + "'");
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) throw Error("cannot write checkpoint " + path + ": tensor '" + t.name + "' has a negative dimension");
      numel *= static_cast<uint64_t>(d);
    }
    size_t element = element_bytes(t.dtype);
    if (element == 0) throw Error("cannot write checkpoint " + path + ": tensor '" + t.name + "' has dtype " + t.dtype);
    uint64_t bytes = numel * element;
    crc = crc32_ieee(t.data, bytes, crc);
    tensor_entries += "," + json_quote(t.name) + ":{\"dtype\":" + json_quote(t.dtype) + ",\"shape\":" +
                      shape_string(t.shape) +
                      ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    byte_sizes.push_back(bytes);
    offset += bytes;
  }

  std::map<std::string, std::string> all_metadata = metadata;
  all_metadata["crc32"] = std::to_string(crc);
  std::string header = "{\"__metadata__\":{";
  for (const auto& [key, value] : all_metadata)
    header += (header.back() == '{' ? "" : ",") + json_quote(key) + ":" + json_quote(value);
  header += "}" + tensor_entries + "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
  uint64_t header_size = header.size();

  std::vector<std::pair<const void*, size_t>> pieces = {{&header_size, 8}, {header.data(), header.size()}};
  for (size_t i = 0; i < tensors.size(); i++) pieces.push_back({tensors[i].data, byte_sizes[i]});
  write_file_atomic(path, pieces, "checkpoint");
}

namespace {

struct FileDescriptor {
  int fd;
  ~FileDescriptor() { if (fd >= 0) ::close(fd); }
};

bool read_exact_at(int fd, uint64_t offset, void* dst, size_t n) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    ssize_t got = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
  return true;
}

const Json& require(const Json& entry, const char* key, const std::string& what) {
  const Json* value = entry.find(key);
  if (!value) throw Error(what + " has no \"" + key + "\"");
  return *value;
}

// Where a tensor's bytes sit in the data section.
struct Span {
  uint64_t begin, end;
  size_t tensor;
};

}  // namespace

Safetensors safetensors_read(const std::string& path) {
  const std::string name = "checkpoint " + path;
  FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) throw Error("cannot open " + name + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(file.fd, &st) != 0 || !S_ISREG(st.st_mode)) throw Error(name + " is not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8)
    throw Error(name + " is truncated (" + std::to_string(file_size) + " bytes, less than the 8-byte header length)");

  uint64_t header_size = 0;
  if (!read_exact_at(file.fd, 0, &header_size, 8)) throw Error("cannot read " + name);
  if (header_size > kMaxHeaderBytes)
    throw Error(name + " has an absurd header length (" + std::to_string(header_size) + " bytes); not a safetensors file?");
  if (header_size > file_size - 8)
    throw Error(name + " is truncated (header says " + std::to_string(header_size) + " bytes, file has " +
                std::to_string(file_size) + ")");
  std::string header_text(header_size, '\0');
  if (!read_exact_at(file.fd, 8, header_text.data(), header_size)) throw Error("cannot read " + name);
  Json header = json_parse(header_text, name + " header");
  if (header.kind != Json::Kind::Object) throw Error(name + " header is not a JSON object");

  Safetensors result;
  result.path = path;
  const uint64_t data_size = file_size - 8 - header_size;
  std::vector<Span> spans;
  for (const auto& [key, entry] : header.object) {
    if (key == "__metadata__") {
      if (entry.kind != Json::Kind::Object) throw Error(name + " header: __metadata__ is not an object");
      for (const auto& [meta_key, meta_value] : entry.object)
        result.metadata[meta_key] = meta_value.as_string(name + " metadata \"" + meta_key + "\"");
      continue;
    }
    const std::string what = name + " tensor '" + key + "'";
    if (entry.kind != Json::Kind::Object) throw Error(what + " is not a JSON object");
    const std::string& dtype = require(entry, "dtype", what).as_string(what + " dtype");
    const size_t element = element_bytes(dtype);
    if (element == 0) throw Error(what + " has dtype " + dtype + "; only F32, I8 and U8 are supported");

    Tensor tensor;
    tensor.name = key;
    tensor.dtype = dtype;
    const Json& shape = require(entry, "shape", what);
    if (shape.kind != Json::Kind::Array) throw Error(what + " shape is not an array");
    uint64_t numel = 1;
    for (const Json& dim : shape.array) {
      int64_t d = dim.as_int(what + " shape");
      if (d < 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel))
        throw Error(what + " has an impossible shape");
      tensor.shape.push_back(d);
    }

    const Json& offsets = require(entry, "data_offsets", what);
    if (offsets.kind != Json::Kind::Array || offsets.array.size() != 2)
      throw Error(what + " data_offsets is not a [begin, end] pair");
    int64_t begin = offsets.array[0].as_int(what + " data_offsets");
    int64_t end = offsets.array[1].as_int(what + " data_offsets");
    if (begin < 0 || end < begin) throw Error(what + " has invalid data_offsets [" + std::to_string(begin) + "," + std::to_string(end) + "]");
    if (static_cast<uint64_t>(end) > data_size)
      throw Error(name + " is truncated (tensor '" + key + "' ends at data byte " + std::to_string(end) +
                  ", data section has " + std::to_string(data_size) + ")");
    if (numel > UINT64_MAX / element || static_cast<uint64_t>(end - begin) != numel * element)
      throw Error(what + " has " + std::to_string(end - begin) + " bytes of data but shape " +
                  shape_string(tensor.shape) + " needs " + std::to_string(numel) +
                  (element == 4 ? " floats" : " bytes"));
    spans.push_back({static_cast<uint64_t>(begin), static_cast<uint64_t>(end), result.tensors.size()});
    result.tensors.push_back(std::move(tensor));
  }

  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < spans.size(); i++)
    if (spans[i].begin < spans[i - 1].end)
      throw Error(name + " is corrupt (tensors '" + result.tensors[spans[i - 1].tensor].name + "' and '" +
                  result.tensors[spans[i].tensor].name + "' overlap)");

  std::vector<uint8_t> data(data_size);
  if (!read_exact_at(file.fd, 8 + header_size, data.data(), data_size)) throw Error("cannot read " + name);
  // Files written by other tools carry no checksum; ours always do.
  auto crc_entry = result.metadata.find("crc32");
  if (crc_entry != result.metadata.end()) {
    const std::string& text = crc_entry->second;
    uint32_t expected = 0;
    auto parsed = std::from_chars(text.data(), text.data() + text.size(), expected);
    if (parsed.ec != std::errc() || parsed.ptr != text.data() + text.size())
      throw Error(name + " is corrupt (crc32 metadata \"" + text + "\" is not a number)");
    if (crc32_ieee(data.data(), data.size()) != expected) throw Error(name + " is corrupt (crc32 mismatch)");
  }
  for (const Span& span : spans) {
    Tensor& tensor = result.tensors[span.tensor];
    void* to = nullptr;
    if (tensor.dtype == "F32") {
      tensor.data.resize((span.end - span.begin) / sizeof(float));
      to = tensor.data.data();
    } else {
      tensor.bytes.resize(span.end - span.begin);
      to = tensor.bytes.data();
    }
    if (span.end > span.begin) std::memcpy(to, data.data() + span.begin, span.end - span.begin);
  }
  return result;
}

}  // namespace bytelm
