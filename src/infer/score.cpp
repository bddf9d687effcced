#include "infer/score.h"

#include <cmath>

namespace bytelm {

std::vector<float> score_bytes(Model<float>& model, const uint8_t* data, size_t n, int seq, int batch,
                               const ScoreProgress& progress) {
  std::vector<float> bits(n, 0.f);
  if (n == 0) return bits;
  bits[0] = 8.f;
  size_t predictions = n - 1;  // window w predicts data[w*seq + 1 ...] from data[w*seq ...]
  size_t full = predictions / seq;
  std::vector<float> loss((size_t)batch * seq);
  const float to_bits = float(1 / std::log(2.0));
  for (size_t w0 = 0; w0 < full; w0 += batch) {
    int B = (int)std::min<size_t>(batch, full - w0);
    // windows are contiguous in the text, so x and y are two views of the same bytes
    std::vector<uint8_t> x((size_t)B * seq), y((size_t)B * seq);
    for (int b = 0; b < B; b++) {
      size_t s = (w0 + b) * seq;
      std::copy(data + s, data + s + seq, x.begin() + (size_t)b * seq);
      std::copy(data + s + 1, data + s + 1 + seq, y.begin() + (size_t)b * seq);
    }
    model.forward(x.data(), y.data(), B, seq, loss.data());
    for (size_t i = 0; i < (size_t)B * seq; i++) bits[w0 * seq + 1 + i] = loss[i] * to_bits;
    if (progress) progress((w0 + B) * seq + 1);
  }
  size_t s = full * seq, tail = predictions - s;
  if (tail > 0) {
    model.forward(data + s, data + s + 1, 1, (int)tail, loss.data());
    for (size_t i = 0; i < tail; i++) bits[s + 1 + i] = loss[i] * to_bits;
  }
  if (progress) progress(n);
  return bits;
}

BpbResult bits_per_byte(Model<float>& model, const uint8_t* data, size_t n, int seq, int batch) {
  std::vector<float> bits = score_bytes(model, data, n, seq, batch);
  double total = 0;
  for (float b : bits) total += b;
  return {n ? total / n : 0.0, n};
}

}  // namespace bytelm
