#include "train/corpus.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace bytelm {

namespace fs = std::filesystem;

Corpus::Corpus(Corpus&& other) noexcept
    : path_(std::move(other.path_)), files_(std::exchange(other.files_, {})), size_(std::exchange(other.size_, 0)) {}

Corpus& Corpus::operator=(Corpus&& other) noexcept {
  if (this != &other) {
    unmap_all();
    path_ = std::move(other.path_);
    files_ = std::exchange(other.files_, {});
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Corpus::~Corpus() { unmap_all(); }

void Corpus::unmap_all() {
  for (const MappedFile& file : files_) ::munmap(const_cast<uint8_t*>(file.bytes), file.size);
  files_.clear();
  size_ = 0;
}

Corpus Corpus::open(const std::string& path) {
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) throw Error("corpus " + path + " does not exist");

  std::vector<fs::path> file_paths;
  if (fs::is_directory(status)) {
    for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code entry_ec;
      if (it->is_regular_file(entry_ec)) file_paths.push_back(it->path());
    }
    if (ec) throw Error("cannot read corpus directory " + path + ": " + ec.message());
    std::sort(file_paths.begin(), file_paths.end());
  } else if (fs::is_regular_file(status)) {
    file_paths.push_back(path);
  } else {
    throw Error("corpus " + path + " is neither a regular file nor a directory");
  }

  Corpus corpus;  // its destructor unmaps what was mapped if a later file fails
  corpus.path_ = path;
  for (const fs::path& file_path : file_paths) {
    int fd = ::open(file_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error("cannot open corpus file " + file_path.string() + ": " + std::strerror(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      std::string reason = std::strerror(errno);
      ::close(fd);
      throw Error("cannot stat corpus file " + file_path.string() + ": " + reason);
    }
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size == 0) {  // mmap rejects zero lengths, and an empty file contributes nothing
      ::close(fd);
      continue;
    }
    void* bytes = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    ::close(fd);  // the mapping stays valid without the descriptor
    if (bytes == MAP_FAILED) throw Error("cannot map corpus file " + file_path.string() + ": " + std::strerror(map_errno));
    corpus.files_.push_back({static_cast<const uint8_t*>(bytes), size, corpus.size_});
    corpus.size_ += size;
  }
  if (corpus.size_ == 0) throw Error("corpus " + path + " is empty (0 bytes)");
  return corpus;
}

uint64_t Corpus::size() const { return size_; }

const std::string& Corpus::path() const { return path_; }

void Corpus::read(uint64_t offset, size_t n, uint8_t* dst) const {
  if (n > size_ || offset > size_ - n)
    throw Error("corpus " + path_ + ": read of " + std::to_string(n) + " bytes at offset " + std::to_string(offset) +
                " is out of range (size " + std::to_string(size_) + ")");
  // First file whose start is past `offset`, minus one, is the file holding `offset`.
  auto file = std::upper_bound(files_.begin(), files_.end(), offset,
                               [](uint64_t o, const MappedFile& f) { return o < f.offset; }) - 1;
  while (n > 0) {
    uint64_t within = offset - file->offset;
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, file->size - within));
    std::memcpy(dst, file->bytes + within, chunk);
    dst += chunk;
    offset += chunk;
    n -= chunk;
    ++file;
  }
}

std::pair<CorpusRange, CorpusRange> split_tail(const Corpus& corpus, double val_fraction) {
  if (!(val_fraction > 0 && val_fraction < 1))
    throw Error("validation fraction " + std::to_string(val_fraction) + " for corpus " + corpus.path() +
                " must be between 0 and 1");
  uint64_t size = corpus.size();
  uint64_t val_size = std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(static_cast<double>(size) * val_fraction)));
  if (val_size >= size)
    throw Error("corpus " + corpus.path() + " (" + std::to_string(size) + " bytes) is too small to split off " +
                std::to_string(val_fraction) + " for validation");
  uint64_t split = size - val_size;
  return {CorpusRange{&corpus, 0, split}, CorpusRange{&corpus, split, size}};
}

static uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

void sample_windows(const CorpusRange& range, uint64_t seed, uint64_t step, int batch, int window, uint8_t* out) {
  if (batch < 0 || window <= 0)
    throw Error("cannot sample " + std::to_string(batch) + " windows of " + std::to_string(window) + " bytes");
  if (range.size() < static_cast<uint64_t>(window))
    throw Error("corpus " + range.corpus->path() + ": range of " + std::to_string(range.size()) +
                " bytes is shorter than one window of " + std::to_string(window) + " bytes");
  uint64_t starts = range.size() - static_cast<uint64_t>(window) + 1;
  // Row r of step s is element r of a splitmix64 stream keyed by (seed, step): no state carried between calls.
  uint64_t key = splitmix64(seed ^ splitmix64(step));
  for (int row = 0; row < batch; row++) {
    uint64_t random = splitmix64(key + static_cast<uint64_t>(row) * 0x9E3779B97F4A7C15ull);
    // Multiply-shift maps 64 random bits onto [0, starts); the bias is below starts / 2^64.
    uint64_t start = static_cast<uint64_t>((static_cast<unsigned __int128>(random) * starts) >> 64);
    range.corpus->read(range.begin + start, static_cast<size_t>(window), out + static_cast<size_t>(row) * window);
  }
}

void split_windows(const uint8_t* windows, int batch, int seq, uint8_t* x, uint8_t* y) {
  for (int b = 0; b < batch; b++) {
    const uint8_t* w = windows + (size_t)b * (seq + 1);
    std::copy(w, w + seq, x + (size_t)b * seq);
    std::copy(w + 1, w + 1 + seq, y + (size_t)b * seq);
  }
}

}  // namespace bytelm
