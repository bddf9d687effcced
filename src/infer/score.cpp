#include "infer/score.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace bytelm {

std::vector<float> score_bytes(Model<float>& model, const uint8_t* data, size_t n, int window, int stride, int batch,
                               const ScoreProgress& progress) {
  if (window < 1 || batch < 1) throw Error("scoring needs a window and a batch of at least 1");
  if (stride < 1 || stride > window)
    throw Error("the stride must be in 1..window (" + std::to_string(window) + "), got " + std::to_string(stride));
  std::vector<float> bits(n, 0.f);
  if (n == 0) return bits;
  bits[0] = 8.f;
  // Prediction p (of byte p + 1) reads bytes 0..p. Window k reads bytes [k stride, k stride + window) and scores
  // its predictions from `first` (where the previous window's stopped) to its end.
  struct Window {
    size_t start, first, end;
  };
  size_t predictions = n - 1;
  std::vector<Window> windows;
  for (size_t covered = 0, start = 0; covered < predictions; start += stride) {
    size_t end = std::min(start + window, predictions);
    windows.push_back({start, covered, end});
    covered = end;
  }
  std::vector<float> loss((size_t)batch * window);
  const float to_bits = float(1 / std::log(2.0));
  // Windows of one length run `batch` at a time (all but possibly the last are full).
  for (size_t w0 = 0; w0 < windows.size();) {
    int T = int(windows[w0].end - windows[w0].start), B = 0;
    while (B < batch && w0 + B < windows.size() && int(windows[w0 + B].end - windows[w0 + B].start) == T) B++;
    std::vector<uint8_t> x((size_t)B * T), y((size_t)B * T);
    for (int b = 0; b < B; b++) {
      size_t s = windows[w0 + b].start;
      std::copy(data + s, data + s + T, x.begin() + (size_t)b * T);
      std::copy(data + s + 1, data + s + 1 + T, y.begin() + (size_t)b * T);
    }
    model.forward(x.data(), y.data(), B, T, loss.data());
    for (int b = 0; b < B; b++) {
      const Window& w = windows[w0 + b];
      for (size_t p = w.first; p < w.end; p++) bits[p + 1] = loss[(size_t)b * T + (p - w.start)] * to_bits;
    }
    w0 += B;
    if (progress) progress(windows[w0 - 1].end + 1);
  }
  if (progress) progress(n);
  return bits;
}

BpbResult bits_per_byte(Model<float>& model, const uint8_t* data, size_t n, int window, int stride, int batch,
                        const ScoreProgress& progress) {
  std::vector<float> bits = score_bytes(model, data, n, window, stride, batch, progress);
  double total = 0;
  for (float b : bits) total += b;
  return {n ? total / n : 0.0, n};
}

}  // namespace bytelm
