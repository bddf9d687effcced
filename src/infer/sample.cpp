#include "infer/sample.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace bytelm {

uint8_t sample_byte(const float* logits, const SamplingOptions& opt, Rng& rng) {
  int order[256];
  std::iota(order, order + 256, 0);
  // ties broken by byte value so the result never depends on the sort implementation
  std::sort(order, order + 256, [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  if (opt.temperature <= 0) return uint8_t(order[0]);
  int keep = opt.top_k > 0 ? std::min(opt.top_k, 256) : 256;
  double p[256], total = 0;
  for (int i = 0; i < keep; i++) total += p[i] = std::exp((logits[order[i]] - logits[order[0]]) / opt.temperature);
  if (opt.top_p < 1) {
    double mass = 0;
    for (int i = 0; i < keep; i++)
      if ((mass += p[i]) >= opt.top_p * total) {
        keep = i + 1;
        total = mass;
        break;
      }
  }
  double r = rng.uniform() * total;
  for (int i = 0; i < keep; i++)
    if ((r -= p[i]) < 0) return uint8_t(order[i]);
  return uint8_t(order[keep - 1]);
}

}  // namespace bytelm
