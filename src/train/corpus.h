// Raw-byte training data, memory-mapped. Every byte is data: no text assumptions.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bytelm {

// A corpus is a file, or a directory whose regular files (recursively, sorted
// by path) are concatenated. Empty files are skipped.
class Corpus {
 public:
  // Errors (each naming the path): missing, unreadable, or 0 bytes in total.
  static Corpus open(const std::string& path);
  uint64_t size() const;
  // Copies bytes [offset, offset + n) to dst, crossing file boundaries as needed.
  void read(uint64_t offset, size_t n, uint8_t* dst) const;
  const std::string& path() const;

  // Move-only: owns its mappings. Moving invalidates CorpusRange pointers to it.
  Corpus(Corpus&& other) noexcept;
  Corpus& operator=(Corpus&& other) noexcept;
  Corpus(const Corpus&) = delete;
  Corpus& operator=(const Corpus&) = delete;
  ~Corpus();

 private:
  Corpus() = default;
  void unmap_all();

  struct MappedFile {
    const uint8_t* bytes;
    uint64_t size;
    uint64_t offset;  // of its first byte within the corpus
  };
  std::string path_;
  std::vector<MappedFile> files_;  // in corpus order
  uint64_t size_ = 0;
};

// A half-open byte range of a corpus.
struct CorpusRange {
  const Corpus* corpus;
  uint64_t begin, end;
  uint64_t size() const { return end - begin; }
};

// {train, val}: val is the last max(1, round(size * val_fraction)) bytes.
// Error unless 0 < val_fraction < 1 and both parts are non-empty.
std::pair<CorpusRange, CorpusRange> split_tail(const Corpus& corpus, double val_fraction);

// Fills `out` (batch rows of window bytes, row-major) with windows drawn
// uniformly from `range`. A pure function of (seed, step), so a resumed run
// sees exactly the batches it would have seen. Error if range.size() < window.
void sample_windows(const CorpusRange& range, uint64_t seed, uint64_t step, int batch, int window, uint8_t* out);

// Splits batch windows of seq + 1 bytes into model inputs x and next-byte targets y ([batch, seq] each).
void split_windows(const uint8_t* windows, int batch, int seq, uint8_t* x, uint8_t* y);

}  // namespace bytelm
