#include "train/adamw.h"

#include <cmath>

#include "core/parallel.h"

namespace bytelm {

double lr_at(const TrainConfig& t, int step) {
  int warm = t.warmup_steps();
  if (step < warm) return t.lr * (step + 1) / warm;
  int decay_steps = t.steps - warm;
  double progress = decay_steps > 0 ? double(step - warm) / decay_steps : 1.0;
  progress = std::min(1.0, std::max(0.0, progress));
  double floor = t.lr * t.min_lr_frac;
  return floor + (t.lr - floor) * 0.5 * (1 + std::cos(M_PI * progress));
}

double AdamW::step(std::vector<float>& params, std::vector<float>& grads, const std::vector<ParamInfo>& info,
                   const TrainConfig& t, int step, double lr) {
  double sq = 0;
  parallel_rows_reduce((int)info.size(), 1, &sq, [&](int k, double* part) {
    const ParamInfo& p = info[k];
    double s = 0;
    for (size_t i = p.offset; i < p.offset + p.size; i++) s += (double)grads[i] * grads[i];
    part[0] += s;
  });
  double norm = std::sqrt(sq);
  float scale = (t.clip > 0 && norm > t.clip) ? float(t.clip / norm) : 1.f;
  float b1 = (float)t.beta1, b2 = (float)t.beta2;
  float c1 = float(1 - std::pow(t.beta1, step + 1)), c2 = float(1 - std::pow(t.beta2, step + 1));
  for (const ParamInfo& p : info) {
    float decay = p.decay ? float(lr * t.weight_decay) : 0.f;
#pragma omp parallel for schedule(static)
    for (size_t i = p.offset; i < p.offset + p.size; i++) {
      float g = grads[i] * scale;
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      float update = (m[i] / c1) / (std::sqrt(v[i] / c2) + 1e-8f);
      params[i] -= float(lr) * update + decay * params[i];
    }
  }
  return norm;
}

}  // namespace bytelm
