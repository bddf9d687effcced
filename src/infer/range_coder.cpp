#include "infer/range_coder.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace bytelm {

namespace {

constexpr uint32_t kTop = 1u << 24;  // renormalise (shift a byte out) whenever the range falls below this

void fill_cumulative(ByteFreqs& f) {
  f.cum[0] = 0;
  for (int s = 0; s < 256; s++) f.cum[s + 1] = f.cum[s] + f.freq[s];
}

}  // namespace

ByteFreqs uniform_freqs() {
  ByteFreqs f;
  std::fill(f.freq, f.freq + 256, kFreqTotal / 256);
  fill_cumulative(f);
  return f;
}

void quantise_logits(const float* logits, ByteFreqs& out) {
  int best = 0;
  for (int s = 0; s < 256; s++) {
    if (!std::isfinite(logits[s])) throw Error("the model produced a non-finite logit (for byte " + std::to_string(s) + "): it cannot code");
    if (logits[s] > logits[best]) best = s;
  }
  const double top = logits[best];
  double p[256], sum = 0;
  for (int s = 0; s < 256; s++) sum += p[s] = std::exp(double(logits[s]) - top);
  const double scale = double(kFreqTotal - 256) / sum;  // sum >= 1: the best byte contributes exp(0)
  int64_t used = 0;
  for (int s = 0; s < 256; s++) used += out.freq[s] = 1 + uint32_t(p[s] * scale);
  // The floors leave 0..256 over (or, if rounding pushed a product just past an integer, a count or two too many):
  // the likeliest byte, which holds at least (2^16 - 256) / 256 + 1 of the total, takes the difference.
  out.freq[best] = uint32_t(int64_t(out.freq[best]) + int64_t(kFreqTotal) - used);
  fill_cumulative(out);
}

void RangeEncoder::encode(const ByteFreqs& f, uint8_t byte) {
  uint32_t r = range_ >> kFreqBits;
  low_ += uint64_t(r) * f.cum[byte];
  range_ = r * f.freq[byte];
  while (range_ < kTop) {
    range_ <<= 8;
    shift_low();
  }
}

// Moves the top byte of low out of the 32-bit window. It is settled unless it is 0xFF with no carry yet (a later
// carry would turn it into 0x00 and bump the byte before it), so 0xFFs wait in pending_ff_ behind the cache.
// The interval never leaves the one it started as, so no carry can reach past the first byte written.
void RangeEncoder::shift_low() {
  if (low_ < 0xFF000000u || low_ >= (uint64_t(1) << 32)) {
    uint8_t carry = uint8_t(low_ >> 32);
    if (have_cache_) out_.push_back(uint8_t(cache_ + carry));
    for (; pending_ff_ > 0; pending_ff_--) out_.push_back(uint8_t(0xFF + carry));
    cache_ = uint8_t(low_ >> 24);
    have_cache_ = true;
  } else {
    pending_ff_++;
  }
  low_ = (low_ & 0x00FFFFFFu) << 8;
}

void RangeEncoder::finish() {
  // Four shifts settle the four bytes of low, the fifth writes the last of them out of the cache.
  for (int i = 0; i < 5; i++) shift_low();
}

RangeDecoder::RangeDecoder(const uint8_t* data, size_t n) : data_(data), n_(n) {
  for (int i = 0; i < 4; i++) code_ = (code_ << 8) | next_byte();
}

uint8_t RangeDecoder::decode(const ByteFreqs& f) {
  uint32_t r = range_ >> kFreqBits;
  uint32_t target = code_ / r;
  if (target >= kFreqTotal) throw Error("a coded value outside every byte's interval");
  // the byte whose interval [cum[s], cum[s+1]) holds target
  int s = int(std::upper_bound(f.cum, f.cum + 257, target) - f.cum) - 1;
  code_ -= r * f.cum[s];
  range_ = r * f.freq[s];
  while (range_ < kTop) {
    range_ <<= 8;
    code_ = (code_ << 8) | next_byte();
  }
  return uint8_t(s);
}

}  // namespace bytelm
