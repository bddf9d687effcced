#include "train/bench.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "core/error.h"
#include "core/git_commit.h"
#include "core/json.h"
#include "core/op_profile.h"
#include "core/rng.h"
#include "models/mamba.h"
#include "models/ssm.h"
#include "models/transformer.h"
#include "train/adamw.h"
#include "train/corpus.h"
#include "train/train_step.h"
#ifdef BYTELM_WITH_CUDA
#include <cuda_runtime.h>

#include "core/device_buffer.h"
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace bytelm {

double train_flops_per_byte(const ModelConfig& m) {
  if (m.arch == "mamba") {
    MambaDims k(m);
    double d = k.d, Di = k.inner, R = k.dt_rank, N = k.state;
    // in_proj, x_proj, dt_proj and out_proj at every byte. The depthwise conv and the scan (K + 3N multiply-adds
    // and N exponentials a channel and byte: 12% more at mamba-1m, 2% at mamba-100m) are not counted.
    double block_macs = 2 * Di * d + Di * (R + 2 * N) + R * Di + Di * d;
    return 3 * 2 * (m.layers * block_macs + 256 * d);
  }
  if (m.arch == "transformer" || m.arch == "hybrid") {
    // qkv and the out projection (attention) or the in and out projections (long convolution), the MLP, the
    // bigram projection and the head at every byte. The attention scores and the long convolution, which grow
    // with seq and conv_len, are not counted.
    TransformerDims k(m);
    double d = k.d, macs = 256 * d + (m.bigram_buckets > 0 ? d * m.bigram_dim : 0);
    for (int l = 0; l < m.layers; l++) macs += (transformer_mixer(m, l) == 'a' ? 4 : 3) * d * d + 2 * d * k.hidden;
    return 3 * 2 * macs;
  }
  double d = m.d, H = m.hidden();
  double block_macs = 2 * d * d + 3 * d * H;  // W_in, W_out and the SwiGLU, once per patch (local's: per byte)
  return 3 * 2 * (m.layers * block_macs / m.patch + ssm_byte_rate_blocks(m) * block_macs + 256 * d);
}

double train_activation_floats_per_byte(const ModelConfig& m) {
  double d = m.d, L = m.layers;
  if (m.arch == "mamba") {
    // as models/mamba.cpp holds them: the residual stream entering each block and leaving the last, each
    // block's activations, one block's gradients, the stream's gradient, the output norm, logits and loss
    MambaDims k(m);
    double Di = k.inner, R = k.dt_rank, N = k.state;
    return (L + 1) * d + L * (d + 2 + 5 * Di + R + 2 * N) + (d + 5 * Di + R + 2 * N) + d + (d + 2) + 256 + 1;
  }
  if (m.arch == "transformer" || m.arch == "hybrid") {
    // as models/transformer.cpp holds them: the residual stream entering each block and leaving the last, each
    // block's rows and statistics, the embedding-side rows, the shared gradient rows (dstream, dln, dmixed,
    // dtmp, dmix, the MLP's scratch, the skips'), the output norm, logits (twice with the cap) and loss
    TransformerDims k(m);
    double H = k.hidden, dim = m.bigram_buckets > 0 ? m.bigram_dim : 0;
    return (L + 1) * d + L * (7 * d + 2 * H + 4 + k.heads) + (d + 2 * dim + 1) + (7 * d + H + k.heads + k.skips * d) +
           (d + 2) + 256 * (m.softcap > 0 ? 2 : 1) + 1;
  }
  double H = m.hidden(), P = m.patch;
  return (6 * d + 256 + 4) + (L / P + ssm_byte_rate_blocks(m)) * (5 * d + 3 * H + 4 + d) + 3 * d;
}

std::string device_description(const std::string& device) {
  if (device == "cpu") {
    std::string name = "cpu";
#ifdef _OPENMP
    name += " (" + std::to_string(omp_get_max_threads()) + " threads)";
#endif
    return name;
  }
#ifdef BYTELM_WITH_CUDA
  cudaDeviceProp prop;
  BYTELM_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  return prop.name;
#else
  throw Error("device " + device + ": this build of bytelm has no CUDA");
#endif
}

std::string run_bench(const BenchOptions& o) {
  const TrainConfig& t = o.cfg.train;
  validate(o.cfg);
  if (o.warmup < 0 || o.steps < 1) throw Error("bench needs --warmup >= 0 and --steps >= 1");
  auto model = make_model_on(o.device, o.cfg.model, t.seed);
  AdamW opt(model->params().size());
  TrainStep stepper(*model, opt, o.tune_products);
  size_t window = (size_t)t.seq + 1;
  std::vector<uint8_t> windows((size_t)t.batch * window), x((size_t)t.batch * t.seq), y((size_t)t.batch * t.seq);
  std::optional<Corpus> corpus;
  if (!o.data.empty()) corpus.emplace(Corpus::open(o.data));
  if (corpus && corpus->size() < window) throw Error("--data is shorter than one window of seq + 1 bytes");
  Rng rng(t.seed);
  float loss = 0;
  auto one_step = [&](int s) {
    if (corpus) {
      sample_windows(CorpusRange{&*corpus, 0, corpus->size()}, t.seed, s, t.batch, (int)window, windows.data());
    } else {
      for (auto& b : windows) b = uint8_t(rng.next_u64());
    }
    split_windows(windows.data(), t.batch, t.seq, x.data(), y.data());
    loss = stepper.run(x.data(), y.data(), t.batch, t.seq, t, s, lr_at(t, s)).loss;
  };
  for (int s = 0; s < o.warmup; s++) one_step(s);
  std::string device_name = device_description(model->on_gpu() ? "cuda" : "cpu");
  double peak_tflops = 0;
#ifdef BYTELM_WITH_CUDA
  if (model->on_gpu()) {
    BYTELM_CUDA_CHECK(cudaDeviceSynchronize());
    peak_tflops = 989.0;  // H100/H200 SXM dense bf16 tensor-core peak, the usual MFU yardstick
  }
#endif
  auto t0 = std::chrono::steady_clock::now();
  for (int s = o.warmup; s < o.warmup + o.steps; s++) one_step(s);
#ifdef BYTELM_WITH_CUDA
  if (model->on_gpu()) BYTELM_CUDA_CHECK(cudaDeviceSynchronize());
#endif
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
#ifdef BYTELM_WITH_CUDA
  if (o.profile && model->on_gpu()) {
    auto stream = (cudaStream_t)model->compute_stream();
    OpProfile& p = OpProfile::get();
    p.sync = [stream] { BYTELM_CUDA_CHECK(cudaStreamSynchronize(stream)); };
    p.enabled = true;
    for (int s = o.warmup + o.steps; s < o.warmup + 2 * o.steps; s++) one_step(s);
    p.enabled = false;
    std::fprintf(stderr, "op profile over %d steps (each op timed alone; shares, not speed):\n%s", o.steps,
                 p.report().c_str());
  }
#endif
  double bytes = (double)o.steps * t.batch * t.seq;
  double bytes_per_s = bytes / secs, tflops = bytes_per_s * train_flops_per_byte(o.cfg.model) / 1e12;
  double peak_gib = 0;
#ifdef BYTELM_WITH_CUDA
  if (model->on_gpu()) peak_gib = device_bytes_peak() / double(1 << 30);
#endif
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "{\"impl\":\"bytelm\",\"device\":%s,\"device_name\":%s,\"commit\":%s,\"model\":%s,\"params\":%lld,"
                "\"batch\":%d,\"seq\":%d,\"steps\":%d,\"step_ms\":%.3f,\"bytes_per_s\":%.0f,\"flops_per_byte\":%.0f,"
                "\"tflops\":%.2f,\"mfu\":%s,\"peak_gib\":%.3f,\"loss_bpb\":%.4f,\"tune_products\":%s}",
                json_quote(o.device).c_str(), json_quote(device_name).c_str(), json_quote(bytelm_git_commit).c_str(),
                model_config_json(o.cfg.model).c_str(), (long long)param_count(o.cfg.model), t.batch, t.seq, o.steps,
                1000 * secs / o.steps, bytes_per_s, train_flops_per_byte(o.cfg.model), tflops,
                peak_tflops > 0 ? json_number(std::round(tflops / peak_tflops * 1e4) / 1e4).c_str() : "null", peak_gib,
                loss / std::log(2.0), o.tune_products ? "true" : "false");
  return buf;
}

}  // namespace bytelm
