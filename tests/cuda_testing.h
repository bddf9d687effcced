// What the CUDA tests share (CUDA builds only): device buffers filled from host vectors, norm-wise errors,
// bf16 rounding on the host, and a fixture that skips without a GPU and records every checked error.
//
// Outputs that a kernel overwrites are poisoned with NaN (all-ones bytes) first, so an element it fails to write
// shows up as NaN; outputs that accumulate start from random values instead. Errors are norm-wise,
// ||out - ref|| / ||ref||.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/cuda_check.h"
#include "core/rng.h"
#include "layers/linear_cuda.h"

namespace bytelm::testing {

using V = std::vector<float>;
using Bytes = std::vector<uint8_t>;

// fp32 against the CPU: cuBLAS runs fp32 GEMMs in true fp32 with the default math mode, so GEMM-based layers
// meet the same bound as the elementwise ones.
constexpr double kTol = 1e-5;
// bf16 storage: inputs are rounded to bf16 on the host first and the CPU reference runs in fp32 on those same
// rounded values, so what remains is the kernels' own rounding: each stored bf16 output or intermediate keeps
// 8 mantissa bits (relative rounding <= 2^-9 = 2e-3), accumulation is fp32. Bound: 1e-2, a few roundings deep.
constexpr double kBf16Tol = 1e-2;

inline V random_floats(size_t n, Rng& rng, double scale = 1.0, double offset = 0.0) {
  V v(n);
  for (float& x : v) x = float(rng.normal() * scale + offset);
  return v;
}

// A device buffer holding a copy of a host vector (or n uninitialised elements).
template <class T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : n(count) { BYTELM_CUDA_CHECK(cudaMalloc(&p, sizeof(T) * (n ? n : 1))); }
  explicit Dev(const std::vector<T>& v) : Dev(v.size()) {
    BYTELM_CUDA_CHECK(cudaMemcpy(p, v.data(), sizeof(T) * n, cudaMemcpyHostToDevice));
  }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  // All-ones bytes: NaN as float, so any element a kernel leaves unwritten fails the comparison.
  Dev& poison() {
    BYTELM_CUDA_CHECK(cudaMemset(p, 0xFF, sizeof(T) * n));
    return *this;
  }
  std::vector<T> get() const {  // synchronous copy: waits for the work queued before it
    std::vector<T> v(n);
    BYTELM_CUDA_CHECK(cudaDeviceSynchronize());
    BYTELM_CUDA_CHECK(cudaMemcpy(v.data(), p, sizeof(T) * n, cudaMemcpyDeviceToHost));
    return v;
  }
  operator T*() const { return p; }
};

// ||out - ref|| / ||ref|| in double; any NaN makes it NaN, which fails every EXPECT_LT.
inline double rel_err(const V& out, const V& ref) {
  if (out.size() != ref.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    double e = (double)out[i] - ref[i];
    num += e * e;
    den += (double)ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

inline bool bit_equal(const V& a, const V& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

inline bool bit_equal(const std::vector<V>& a, const std::vector<V>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (!bit_equal(a[i], b[i])) return false;
  return true;
}

inline V round_bf16(V v) {
  for (float& x : v) x = __bfloat162float(__float2bfloat16(x));
  return v;
}

inline std::vector<bf16> to_bf16(const V& v) {
  std::vector<bf16> out(v.size());
  for (size_t i = 0; i < v.size(); i++) out[i] = __float2bfloat16(v[i]);
  return out;
}

inline V to_float(const std::vector<bf16>& v) {
  V out(v.size());
  for (size_t i = 0; i < v.size(); i++) out[i] = __bfloat162float(v[i]);
  return out;
}

// Skips without a CUDA device; a stream, a cuBLAS handle in default (true fp32) math and a cuBLASLt one (gemm())
// for the test.
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
    BYTELM_CUDA_CHECK(cudaStreamCreate(&stream));
    BYTELM_CUBLAS_CHECK(cublasCreate(&handle));
    // Default math: fp32 GEMMs stay fp32 (TF32 only if asked for), so the bounds can be tight.
    BYTELM_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
    BYTELM_CUDA_CHECK(cudaMalloc(&lt_workspace, kLtWorkspaceBytes));
    lt = std::make_unique<GemmLt>(lt_workspace, kLtWorkspaceBytes);
  }
  void TearDown() override {
    lt.reset();
    if (lt_workspace) cudaFree(lt_workspace);
    if (handle) cublasDestroy(handle);
    if (stream) cudaStreamDestroy(stream);
  }
  // Checks out against ref and records the error as a test property (see --gtest_output=xml).
  void expect_close(const std::string& what, const V& out, const V& ref, double tol = kTol) {
    double e = rel_err(out, ref);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", e);
    RecordProperty(tag + what, buf);
    EXPECT_LT(e, tol) << tag << what << ": relative error " << e;
  }
  Gemm gemm() const { return Gemm{handle, CUBLAS_COMPUTE_32F, lt.get()}; }
  std::string tag;  // prefix of the recorded property names, for looped cases
  cudaStream_t stream = nullptr;
  cublasHandle_t handle = nullptr;
  static constexpr size_t kLtWorkspaceBytes = 4 << 20;
  void* lt_workspace = nullptr;
  std::unique_ptr<GemmLt> lt;
};

}  // namespace bytelm::testing
