#include "train/bench_attention.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/git_commit.h"
#include "core/json.h"
#include "core/rng.h"
#include "train/bench.h"
#ifdef BYTELM_WITH_CUDA
#include <cuda_runtime.h>

#include "core/bf16.h"
#include "core/cuda_check.h"
#include "core/device_buffer.h"
#include "layers/attention_cuda.h"
#include "train/kernel_timing.h"
#endif

namespace bytelm {

double attention_forward_flops(double B, double T, double H, double Dh) { return 2 * 2 * B * H * T * T * Dh / 2; }

#ifdef BYTELM_WITH_CUDA

std::vector<std::string> run_attention_bench(const AttentionBenchOptions& o) {
  if (!cuda_available()) throw Error("no CUDA device to time the attention kernel on");
  if (o.tokens < 1 || o.heads < 1 || o.head_dim < 1 || o.warmup < 0 || o.iters < 1)
    throw Error("--tokens, --heads, --head-dim and --iters must be positive, --warmup non-negative");
  for (int T : o.seqs)
    if (T < 1 || o.tokens % T != 0)
      throw Error("every sequence length must divide --tokens " + std::to_string(o.tokens) +
                  " (got " + std::to_string(T) + ")");
  const int H = o.heads, Dh = o.head_dim, ld = 3 * H * Dh;
  const size_t dense = (size_t)o.tokens * H * Dh, rows = (size_t)o.tokens * H;
  // packed q, k, v as a transformer's qkv projection gives them, [B, T, 3, H, Dh]; the same for their gradients
  Rng rng(1);
  DeviceBuffer<bf16> qkv = random_bf16_device((size_t)o.tokens * ld, rng), dout = random_bf16_device(dense, rng);
  DeviceBuffer<bf16> out, dqkv;
  DeviceBuffer<float> lse, delta;
  out.assign_zero(dense);
  dqkv.assign_zero((size_t)o.tokens * ld);
  lse.assign_zero(rows);
  delta.assign_zero(rows);
  const bf16 *q = qkv.data(), *k = q + H * Dh, *v = q + 2 * H * Dh;
  const float scale = 1.f / std::sqrt((float)Dh);

  const std::string device_name = device_description("cuda");
  cudaStream_t stream;
  BYTELM_CUDA_CHECK(cudaStreamCreate(&stream));
  std::vector<std::string> lines;
  for (int T : o.seqs) {
    const int B = o.tokens / T;
    const AttentionShape s{B, T, H, Dh, ld};
    auto forward = [&] { attention_forward_cuda(out.data(), lse.data(), q, k, v, s, scale, stream); };
    auto forward_backward = [&] {
      forward();
      attention_backward_cuda(dqkv.data(), dqkv.data() + H * Dh, dqkv.data() + 2 * H * Dh, delta.data(), dout.data(),
                              q, k, v, out.data(), lse.data(), s, scale, stream);
    };
    const double fwd_flops = attention_forward_flops(B, T, H, Dh);
    for (auto [pass, flops] : {std::pair{"fwd", fwd_flops}, std::pair{"fwd+bwd", 3.5 * fwd_flops}}) {
      const double ms = pass == std::string("fwd") ? median_ms(stream, o.warmup, o.iters, forward)
                                                      : median_ms(stream, o.warmup, o.iters, forward_backward);
      char buf[512];
      std::snprintf(buf, sizeof buf,
                    "{\"impl\":\"bytelm\",\"device\":%s,\"commit\":%s,\"B\":%d,\"T\":%d,\"H\":%d,\"Dh\":%d,"
                    "\"pass\":\"%s\",\"ms\":%.4f,\"tflops\":%.1f}",
                    json_quote(device_name).c_str(), json_quote(bytelm_git_commit).c_str(), B, T, H, Dh, pass, ms,
                    flops / (ms * 1e-3) / 1e12);
      lines.push_back(buf);
    }
  }
  cudaStreamDestroy(stream);
  return lines;
}

#else

std::vector<std::string> run_attention_bench(const AttentionBenchOptions&) {
  throw Error("the attention benchmark needs a CUDA build (nvcc at configure time)");
}

#endif

}  // namespace bytelm
