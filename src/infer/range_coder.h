// Range coding of bytes under integer frequencies, and the quantiser that turns a model's logits into them.
//
// The coder keeps a 32-bit range and a 33-bit low (the 33rd bit is a carry into bytes already settled but not
// yet written: a run of 0xFF bytes is held back until it is known whether a carry turns it into 0x00s).
// Frequencies are over a fixed total of 2^16, so after renormalising (range >= 2^24) each symbol gets at least
// 2^8 of the range: the coder loses at most log2(1 + 2^-8) bits a symbol to rounding, typically far less.
// The encoder writes exactly the bytes the decoder reads (4 + one a renormalising shift), so a decoder that
// wants a byte past the end, or finishes with bytes unread, has a corrupt or truncated stream.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bytelm {

constexpr int kFreqBits = 16;
constexpr uint32_t kFreqTotal = 1u << kFreqBits;

// The frequencies and their running sums for one symbol: cum[s] .. cum[s] + freq[s] - 1 code s.
struct ByteFreqs {
  uint32_t freq[256];
  uint32_t cum[257];  // cum[0] = 0, cum[256] = kFreqTotal
};

// Every byte 256 (8 bits each): how a block's first byte is coded, with no context.
ByteFreqs uniform_freqs();

// The model's next-byte distribution as integer frequencies, the same bits on encoder and decoder: a softmax in
// double in index order 0..255 (max first, then exp(l - max), summed in that order), then
// freq = 1 + floor(p * (2^16 - 256)), so every byte keeps frequency >= 1 whatever the model says, and what the
// floors leave over goes to the likeliest byte (the lowest index on ties) so the total is exactly 2^16.
// Error if a logit is not finite (the model has diverged; no code could be reproduced from it).
void quantise_logits(const float* logits, ByteFreqs& out);

class RangeEncoder {
 public:
  void encode(const ByteFreqs& f, uint8_t byte);
  // Writes the last bytes; the coded stream is then bytes().
  void finish();
  const std::vector<uint8_t>& bytes() const { return out_; }

 private:
  void shift_low();
  uint64_t low_ = 0;
  uint32_t range_ = 0xFFFFFFFFu;
  uint8_t cache_ = 0;      // the last settled byte, written once no carry can reach it
  bool have_cache_ = false;
  uint64_t pending_ff_ = 0;  // 0xFF bytes after the cache, waiting to learn whether a carry comes
  std::vector<uint8_t> out_;
};

class RangeDecoder {
 public:
  RangeDecoder(const uint8_t* data, size_t n);
  // Error if the stream cannot have come from RangeEncoder with these frequencies (a value outside every
  // interval); other damage shows as wrong bytes or an unclean end.
  uint8_t decode(const ByteFreqs& f);
  // After the last symbol: whether the stream ended exactly where the encoder's did. The encoder's final bytes
  // are low itself, so a clean stream leaves every byte read, none past the end, and code (value - low) at 0; any
  // change to those last bytes, which decoding alone could not notice, shows here.
  bool clean_end() const { return pos_ == n_ && code_ == 0; }
  bool overrun() const { return pos_ > n_; }

 private:
  uint8_t next_byte() { return pos_ < n_ ? data_[pos_++] : (pos_++, 0); }
  const uint8_t* data_;
  size_t n_, pos_ = 0;
  uint32_t code_ = 0;  // the coded value minus low, within the current range
  uint32_t range_ = 0xFFFFFFFFu;
};

}  // namespace bytelm
