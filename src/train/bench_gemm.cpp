#include "train/bench_gemm.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/git_commit.h"
#include "core/json.h"
#include "core/rng.h"
#include "train/bench.h"
#ifdef BYTELM_WITH_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <memory>

#include "core/bf16.h"
#include "core/cuda_check.h"
#include "core/device_buffer.h"
#include "layers/gemm_sm90.h"
#include "layers/linear_cuda.h"
#include "train/kernel_timing.h"
#endif

namespace bytelm {

#ifdef BYTELM_WITH_CUDA

namespace {

// ||x - ref|| / ||ref|| of two device bf16 arrays, on the host.
double rel_diff(const DeviceBuffer<bf16>& x, const DeviceBuffer<bf16>& ref, size_t n) {
  std::vector<bf16> a(n), b(n);
  BYTELM_CUDA_CHECK(cudaDeviceSynchronize());
  BYTELM_CUDA_CHECK(cudaMemcpy(a.data(), x.data(), sizeof(bf16) * n, cudaMemcpyDeviceToHost));
  BYTELM_CUDA_CHECK(cudaMemcpy(b.data(), ref.data(), sizeof(bf16) * n, cudaMemcpyDeviceToHost));
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double r = __bfloat162float(b[i]), e = __bfloat162float(a[i]) - r;
    num += e * e;
    den += r * r;
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

}  // namespace

std::vector<std::string> run_gemm_bench(const GemmBenchOptions& o) {
  if (!cuda_available()) throw Error("no CUDA device to time the products on");
  if (!gemm_sm90_available()) throw Error("the sm90 product needs a GPU of compute capability 9.0");
  if (o.warmup < 0 || o.iters < 1) throw Error("--iters must be positive, --warmup non-negative");
  const std::string device_name = device_description("cuda");
  cudaStream_t stream;
  BYTELM_CUDA_CHECK(cudaStreamCreate(&stream));
  cublasHandle_t handle;
  BYTELM_CUBLAS_CHECK(cublasCreate(&handle));
  BYTELM_CUBLAS_CHECK(cublasSetStream(handle, stream));
  // as the models hold it: a cuBLASLt workspace beside the handle (bf16 products run through cublasGemmEx)
  DeviceBuffer<uint8_t> lt_workspace;
  lt_workspace.assign_zero(32 << 20);
  auto lt = std::make_unique<GemmLt>(lt_workspace.data(), lt_workspace.size());
  const Gemm gemm{handle, CUBLAS_COMPUTE_32F, lt.get()};
  std::vector<std::string> lines;
  Rng rng(1);
  enum class Mode { plain, swiglu, swiglu_backward };
  auto run = [&](GemmShape s, Mode mode) {
    const bool swiglu = mode == Mode::swiglu;
    if (s.M < 1 || s.N < 1 || s.K < 1) throw Error("every shape needs M, N and K of at least 1");
    DeviceBuffer<bf16> a = random_bf16_device((size_t)s.M * s.K, rng), b = random_bf16_device((size_t)s.N * s.K, rng);
    DeviceBuffer<bf16> c_ref, c;
    c_ref.assign_zero((size_t)s.M * s.N);
    c.assign_zero((size_t)s.M * s.N);
    DeviceBuffer<bf16> m, g, dg;  // swiglu: m [M, S]; its backward: g and dg [M, 2S]
    if (swiglu) m.assign_zero((size_t)s.M * s.N / 2);
    if (mode == Mode::swiglu_backward) {
      g = random_bf16_device((size_t)s.M * 2 * s.N, rng);
      dg.assign_zero((size_t)s.M * 2 * s.N);
    }
    if (!gemm_sm90_fits(c.data(), s.N, a.data(), s.K, b.data(), s.K, s.M, s.N, s.K))
      throw Error("shape " + std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K) +
                  ": N and K must be multiples of 8");
    const double flops = 2.0 * s.M * s.N * s.K;
    auto line = [&](const std::string& impl, double ms, double diff) {
      char buf[512];
      int n = std::snprintf(buf, sizeof buf,
                            "{\"impl\":\"%s\",\"device\":%s,\"commit\":%s,\"M\":%d,\"N\":%d,\"K\":%d,\"ms\":%.4f,"
                            "\"tflops\":%.1f",
                            impl.c_str(), json_quote(device_name).c_str(), json_quote(bytelm_git_commit).c_str(), s.M,
                            s.N, s.K, ms, flops / (ms * 1e-3) / 1e12);
      if (diff >= 0) n += std::snprintf(buf + n, sizeof buf - n, ",\"rel_diff\":%.2e", diff);
      std::snprintf(buf + n, sizeof buf - n, "}");
      lines.push_back(buf);
    };
    auto cublas = [&] {
      gemm_rows_cuda(false, true, s.M, s.N, s.K, a.data(), s.K, b.data(), s.K, 0.f, c_ref.data(), s.N, gemm, stream);
    };
    line("cublas", median_ms(stream, o.warmup, o.iters, cublas), -1);
    for (GemmTileN tile : {GemmTileN::n128, GemmTileN::n256, GemmTileN::n128_pingpong}) {
      if (mode != Mode::plain && tile == GemmTileN::n256) continue;  // the fused products stage 128 columns at most
      const std::string name = gemm_tile_name(tile);
      if (mode == Mode::swiglu_backward) {
        auto own = [&] {
          gemm_sm90_swiglu_backward(dg.data(), a.data(), s.K, b.data(), s.K, g.data(), s.M, s.N, s.K, tile, stream);
        };
        line("sm90-swiglu-bwd-" + name, median_ms(stream, o.warmup, o.iters, own), -1);
      } else if (swiglu) {
        const int S = s.N / 2;
        auto own = [&] {
          gemm_sm90_swiglu(c.data(), m.data(), a.data(), s.K, b.data(), s.K, s.M, S, s.K, tile, stream);
        };
        const double ms = median_ms(stream, o.warmup, o.iters, own);  // before rel_diff reads this tiling's c
        line("sm90-swiglu-" + name, ms, rel_diff(c, c_ref, c.size()));
      } else {
        auto own = [&] { gemm_sm90_tn(c.data(), s.N, a.data(), s.K, b.data(), s.K, s.M, s.N, s.K, tile, stream); };
        const double ms = median_ms(stream, o.warmup, o.iters, own);
        line("sm90-" + name, ms, rel_diff(c, c_ref, c.size()));
      }
    }
  };
  for (const GemmShape& s : o.shapes) run(s, Mode::plain);
  for (const GemmShape& s : o.swiglu_shapes) run({s.M, 2 * s.N, s.K}, Mode::swiglu);
  for (const GemmShape& s : o.swiglu_shapes) run(s, Mode::swiglu_backward);
  lt.reset();
  cublasDestroy(handle);
  cudaStreamDestroy(stream);
  return lines;
}

#else

std::vector<std::string> run_gemm_bench(const GemmBenchOptions&) {
  throw Error("the product benchmark needs a CUDA build (nvcc at configure time)");
}

#endif

}  // namespace bytelm
