#include "train/adamw.h"

#include <cmath>

#include "core/op_profile.h"
#include "core/parallel.h"
#ifdef BYTELM_WITH_CUDA
#include "core/device_buffer.h"
#include "core/pinned_buffer.h"
#include "core/bf16.h"
#include "train/adamw_cuda.h"
#endif

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

#ifdef BYTELM_WITH_CUDA
struct AdamW::Device {
  DeviceBuffer<float> m, v, scratch;
  DeviceBuffer<uint8_t> decay;
  DeviceBuffer<AdamWCudaArgs> args;
  PinnedBuffer<AdamWCudaArgs> args_host{1};
  PinnedBuffer<float> norm_host{1};
};
#else
struct AdamW::Device {};
#endif

AdamW::AdamW(size_t n) : m(n, 0.f), v(n, 0.f) {}
AdamW::~AdamW() = default;

void AdamW::pull_moments() {
#ifdef BYTELM_WITH_CUDA
  if (!dev_) return;
  BYTELM_CUDA_CHECK(cudaMemcpy(m.data(), dev_->m.data(), m.size() * sizeof(float), cudaMemcpyDeviceToHost));
  BYTELM_CUDA_CHECK(cudaMemcpy(v.data(), dev_->v.data(), v.size() * sizeof(float), cudaMemcpyDeviceToHost));
#endif
}

void AdamW::set_step([[maybe_unused]] const TrainConfig& t, [[maybe_unused]] int step, [[maybe_unused]] double lr) {
#ifdef BYTELM_WITH_CUDA
  if (!dev_) throw Error("AdamW::set_step before the first GPU step");
  dev_->args_host.data()[0] = {(float)lr, (float)t.weight_decay, (float)t.beta1, (float)t.beta2,
                               float(1 - std::pow(t.beta1, step + 1)), float(1 - std::pow(t.beta2, step + 1)),
                               (float)t.clip};
#endif
}

double AdamW::last_norm() const {
#ifdef BYTELM_WITH_CUDA
  if (dev_) return dev_->norm_host.data()[0];
#endif
  return last_norm_;
}

double AdamW::step(Model<float>& model, const TrainConfig& t, int step, double lr) {
  const std::vector<ParamInfo>& info = model.param_info();
  OpScope scope("adamw");
  if (model.on_gpu()) {
#ifdef BYTELM_WITH_CUDA
    auto stream = (cudaStream_t)model.compute_stream();
    size_t n = m.size();
    if (!dev_) {  // first GPU step: mirror the moments (zeros, or a resumed run's) and the decay mask
      dev_ = std::make_unique<Device>();
      dev_->m.assign_zero(n);
      dev_->v.assign_zero(n);
      dev_->scratch.assign_zero(adamw_cuda_scratch());
      dev_->decay.assign_zero(n);
      dev_->args.assign_zero(1);
      std::vector<uint8_t> mask(n, 0);
      for (const ParamInfo& p : info) std::fill(mask.begin() + p.offset, mask.begin() + p.offset + p.size, p.decay);
      BYTELM_CUDA_CHECK(cudaMemcpy(dev_->m.data(), m.data(), n * sizeof(float), cudaMemcpyHostToDevice));
      BYTELM_CUDA_CHECK(cudaMemcpy(dev_->v.data(), v.data(), n * sizeof(float), cudaMemcpyHostToDevice));
      BYTELM_CUDA_CHECK(cudaMemcpy(dev_->decay.data(), mask.data(), n, cudaMemcpyHostToDevice));
    }
    set_step(t, step, lr);
    BYTELM_CUDA_CHECK(cudaMemcpyAsync(dev_->args.data(), dev_->args_host.data(), sizeof(AdamWCudaArgs),
                                      cudaMemcpyHostToDevice, stream));
    adamw_step_cuda(model.compute_params(), (bf16*)model.compute_params_bf16(), model.compute_grads(), dev_->m.data(),
                    dev_->v.data(), dev_->decay.data(), n, dev_->args.data(), dev_->scratch.data(), stream);
    BYTELM_CUDA_CHECK(cudaMemcpyAsync(dev_->norm_host.data(), dev_->scratch.data() + adamw_cuda_scratch() - 1,
                                      sizeof(float), cudaMemcpyDeviceToHost, stream));
    if (stream_capturing(stream)) return NAN;
    BYTELM_CUDA_CHECK(cudaStreamSynchronize(stream));
    return last_norm();
#endif
  }
  std::vector<float>& params = model.params();
  std::vector<float>& grads = model.grads();
  double sq = 0;
  parallel_rows_reduce((int)info.size(), 1, &sq, [&](int k, double* part) {
    const ParamInfo& p = info[k];
    double s = 0;
    for (size_t i = p.offset; i < p.offset + p.size; i++) s += (double)grads[i] * grads[i];
    part[0] += s;
  });
  double norm = last_norm_ = std::sqrt(sq);
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
