// Lossless compression with a byte model: every byte range-coded (infer/range_coder.h) under the model's
// prediction of it, through the O(1)-state streaming step.
//
// The input is cut into blocks of `block` bytes, each coded on its own (its first byte under the uniform
// distribution, 8 bits, as score.h charges it; every later byte under the model given the block's bytes before
// it). Blocks are coded in rounds of `streams`: round r steps blocks r*B .. r*B+B-1 together through one
// make_streams(B) (the last round may be smaller; a stream whose block has ended is fed byte 0 until the round
// ends). The decoder repeats exactly that computation (same rounds, same batch, same filler bytes, same device
// and precision), because a batched layer may round a row differently depending on the batch it is in (OpenBLAS
// does, at d >= 64). The archive records all of it. The CPU thread count is not part of it: on the CPU each
// round runs on one thread, whole rounds in parallel (see run_rounds in compress.cpp).
//
// Archive (version 1, little-endian):
//   "BLMZ"  u32 version  u32 header_len  header[header_len]  u32 CRC-32 of everything before it  payload
// header: u64 size, u32 block, u32 streams, str device, 32 bytes model hash, str checkpoint (a path hint),
//         32 bytes SHA-256 of the original bytes, then a table of u32 coded size and u32 CRC-32 of the original
//         bytes for each block (str: u16 length, then the bytes)
// payload: the blocks' coded bytes, in block order, nothing after.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/sha256.h"
#include "models/model.h"

namespace bytelm {

constexpr uint32_t kArchiveVersion = 1;

struct CompressOptions {
  uint32_t block = 1 << 16;  // bytes a block
  int streams = 8;           // blocks stepped together (make_streams(B)); fewer if the input has fewer blocks
  std::string device = "cpu";  // the device string the model was built with (make_model_on); the decoder uses it
  std::string checkpoint;      // where the model came from, a hint for the decoder
};

struct ArchiveHeader {
  uint32_t version = kArchiveVersion;
  uint64_t size = 0;  // original bytes
  uint32_t block = 0;
  uint32_t streams = 0;
  std::string device, checkpoint;
  Sha256Digest model{}, content{};          // model_hash of the coder's model; SHA-256 of the original bytes
  std::vector<uint32_t> coded_size, crc;  // per block
  size_t payload_offset = 0;              // where the payload starts in the archive
  size_t blocks() const { return coded_size.size(); }
};

// The model's identity: SHA-256 of its config (as JSON) and its fp32 parameters (host copy), in table order.
Sha256Digest model_hash(const Model<float>& model);

// Told the number of original bytes coded (or decoded) so far, now and then.
using CodingProgress = std::function<void(uint64_t done)>;

std::vector<uint8_t> compress_bytes(Model<float>& model, const uint8_t* data, size_t n, const CompressOptions& opt,
                                    const CodingProgress& progress = {});

// Reads and checks the header (magic, version, CRC, consistent sizes, the payload's length): Error with a clear
// message for anything else, a truncated or corrupt archive.
ArchiveHeader read_archive_header(const uint8_t* archive, size_t n);

// Error if `model` is not the archive's (by model_hash) or not on its kind of device, if the payload is corrupt,
// or if a block does not come back to its checksum (which is also what another build or machine that rounds
// the model differently produces: detected, never silent).
std::vector<uint8_t> decompress_bytes(Model<float>& model, const uint8_t* archive, size_t n,
                                      const CodingProgress& progress = {});

}  // namespace bytelm
