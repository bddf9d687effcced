// Timing of the fused causal attention kernel (layers/attention_cuda.h) alone, bf16 on the GPU, the shapes the
// PyTorch comparison (bench/sdpa_ref.py) uses.
#pragma once
#include <string>
#include <vector>

namespace bytelm {

struct AttentionBenchOptions {
  int tokens = 32768;  // B * T at every sequence length, so each call moves the same bytes of q, k, v
  int heads = 8, head_dim = 64;
  std::vector<int> seqs = {1024, 2048, 4096};
  int warmup = 10, iters = 50;  // untimed calls, then timed ones (the median is reported)
};

// Causal FLOPs of one forward: QK^T and PV over the lower triangle, 2 * 2 * B * H * T * T * Dh / 2.
// The backward is counted as 2.5 forwards (its five products against the forward's two).
double attention_forward_flops(double B, double T, double H, double Dh);

// JSON lines, two for each sequence length (pass "fwd", then "fwd+bwd"): impl, device, commit, B, T, H, Dh, pass,
// ms (median of iters calls, device events around each), tflops. Error without a CUDA build or device.
std::vector<std::string> run_attention_bench(const AttentionBenchOptions& o);

}  // namespace bytelm
