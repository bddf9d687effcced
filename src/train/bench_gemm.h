// Timing of the sm90 product (layers/gemm_sm90.h) against cuBLAS on the same operands, at the shapes of the ssm
// presets' forward products, before any layer uses it.
#pragma once
#include <string>
#include <vector>

namespace bytelm {

struct GemmShape {
  int M, N, K;
};

struct GemmBenchOptions {
  // C[M,N] = A[M,K] B[N,K]^T as the ssm's forward runs it at seq 2048 (rows M = batch x 1024 patches):
  // ssm-2m (d 256, SwiGLU width 688), ssm-10m (512, 1376), ssm-100m (1024, 2736): x W12^T, m W3^T, the SSM's
  // d x d maps; then a large square for the peak.
  std::vector<GemmShape> shapes = {{65536, 1376, 256},  {65536, 256, 688}, {65536, 256, 256},   {32768, 2752, 512},
                                   {32768, 512, 1376},  {32768, 512, 512}, {16384, 5472, 1024}, {16384, 1024, 2736},
                                   {16384, 1024, 1024}, {8192, 8192, 8192}};
  // SwiGLU's first product and gate fused (gemm_sm90_swiglu), M x S x K with W12 [2S, K]: the same presets
  std::vector<GemmShape> swiglu_shapes = {{65536, 688, 256}, {32768, 1376, 512}, {16384, 2736, 1024}};
  int warmup = 10, iters = 50;
};

// JSON lines, four a shape: impl ("cublas", then "sm90-" and each tiling's gemm_tile_name: n128, n256,
// n128-pingpong), device, commit, M, N, K, ms (median, device events), tflops, and for the sm90 rows rel_diff,
// ||C - C_cublas|| / ||C_cublas||. Then four a SwiGLU shape, N = 2S: cuBLAS's product alone ("cublas", the gate not
// counted) and "sm90-swiglu-*" (product, gate and the extra write of m; rel_diff of g); then four a shape with N = S
// for the backward: cuBLAS's dm product alone and "sm90-swiglu-bwd-*" (dm's product, reading g, writing dg; no
// rel_diff). Error without a CUDA build or a GPU of compute capability 9.0.
std::vector<std::string> run_gemm_bench(const GemmBenchOptions& o);

}  // namespace bytelm
