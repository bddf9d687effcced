// Row-major GEMMs through column-major cuBLAS: a row-major [R, C] matrix is the
// column-major [C, R] matrix (its transpose) with leading dimension C, so each
// product is computed transposed: (A B)^T = B^T A^T with the operands swapped.
#include <cublasLt.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>

#include "core/bf16.h"
#include "core/cuda_check.h"
#include "core/device_buffer.h"
#include "core/error.h"
#include "core/op_profile.h"
#include "core/pinned_buffer.h"
#include "layers/linear_cuda.h"

namespace bytelm {

namespace {

template <class T>
constexpr cudaDataType_t cuda_type();
template <>
constexpr cudaDataType_t cuda_type<float>() {
  return CUDA_R_32F;
}
template <>
constexpr cudaDataType_t cuda_type<bf16>() {
  return CUDA_R_16BF;
}

// bf16 operands: plain fp32 compute is the bf16 tensor-core path (FAST_16BF is for fp32 operands)
template <class A>
cublasComputeType_t compute_for(Gemm gemm) {
  return cuda_type<A>() == CUDA_R_16BF ? CUBLAS_COMPUTE_32F : gemm.compute;
}

// "gemm MxNxK TN" for the op profile (bytelm bench --profile): each product timed under its column-major shape.
std::string shape_name(cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k, const char* extra) {
  return "gemm " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) + " " +
         (op_a == CUBLAS_OP_N ? "N" : "T") + (op_b == CUBLAS_OP_N ? "N" : "T") + extra;
}

// The largest power of two up to 256 that divides p's address: what the heuristic may assume of a pointer.
uint32_t alignment_of(const void* p) {
  uint32_t a = 256;
  while (a > 1 && reinterpret_cast<uintptr_t>(p) % a != 0) a /= 2;
  return a;
}

}  // namespace

// A column-major product D = C + op(A) op(B) as cuBLASLt runs it: four layouts, the operation and its algorithm.
struct LtPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  LtPlan() = default;
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan() {
    for (cublasLtMatrixLayout_t l : {a, b, c, d})
      if (l) cublasLtMatrixLayoutDestroy(l);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// The two events that time a candidate, destroyed however the timing ends.
struct TimingEvents {
  cudaEvent_t start = nullptr, stop = nullptr;
  TimingEvents() {
    BYTELM_CUDA_CHECK(cudaEventCreate(&start));
    try {
      BYTELM_CUDA_CHECK(cudaEventCreate(&stop));
    } catch (...) {
      cudaEventDestroy(start);
      throw;
    }
  }
  ~TimingEvents() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  TimingEvents(const TimingEvents&) = delete;
  TimingEvents& operator=(const TimingEvents&) = delete;
};

// How long `algo` takes for the plan's product on a, b, c into d: the median of five runs after two, or infinity
// where a run fails.
float time_algo(cublasLtHandle_t handle, const LtPlan& p, const cublasLtMatmulAlgo_t& algo, const void* a,
                const void* b, float beta, const void* c, void* d, void* workspace, size_t bytes, cudaStream_t stream,
                const TimingEvents& ev) {
  const float one = 1.f;
  auto run = [&] {
    return cublasLtMatmul(handle, p.op, &one, a, p.a, b, p.b, &beta, c, p.c, d, p.d, &algo, workspace, bytes, stream);
  };
  for (int i = 0; i < 2; i++)
    if (run() != CUBLAS_STATUS_SUCCESS) return INFINITY;
  float ms[5];
  for (float& t : ms) {
    BYTELM_CUDA_CHECK(cudaEventRecord(ev.start, stream));
    if (run() != CUBLAS_STATUS_SUCCESS) return INFINITY;
    BYTELM_CUDA_CHECK(cudaEventRecord(ev.stop, stream));
    BYTELM_CUDA_CHECK(cudaEventSynchronize(ev.stop));
    BYTELM_CUDA_CHECK(cudaEventElapsedTime(&t, ev.start, ev.stop));
  }
  std::sort(ms, ms + 5);
  return ms[2];
}

struct GemmLt::Impl {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t bytes = 0;
  bool tune = false;  // see GemmLt::tune
  // op_a, op_b, m, n, k, lda, ldb, ldc, ldd, the A/B and C/D types, compute type, the four pointers' alignments, and
  // whether beta is zero
  using Shape = std::array<int64_t, 17>;
  std::map<Shape, LtPlan> plans;

  // The plan of column-major D = alpha op(A) op(B) + beta C for these shapes, types and alignments, made on first
  // use: the heuristic's first algorithm or, when tuning (and the stream is not being captured into a graph), the
  // fastest of its first kTuneCandidates timed on these operands.
  static constexpr int kTuneCandidates = 8;
  template <class A, class C>
  const LtPlan& plan(cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k, const A* a, int lda,
                     const A* b, int ldb, float beta, const C* c, int ldc, const C* d, int ldd,
                     cublasComputeType_t compute, cudaStream_t stream) {
    uint32_t align[4] = {alignment_of(a), alignment_of(b), alignment_of(c), alignment_of(d)};
    Shape shape{op_a,           op_b,           m,       n,        k,        lda,      ldb,      ldc,        ldd,
                cuda_type<A>(), cuda_type<C>(), compute, align[0], align[1], align[2], align[3], beta == 0.f};
    auto [it, fresh] = plans.try_emplace(shape);
    LtPlan& p = it->second;
    if (!fresh) return p;
    try {
      cudaDataType_t t = cuda_type<A>(), tc = cuda_type<C>();
      bool ta = op_a != CUBLAS_OP_N, tb = op_b != CUBLAS_OP_N;
      BYTELM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, compute, CUDA_R_32F));
      BYTELM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
      BYTELM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
      BYTELM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, t, ta ? k : m, ta ? m : k, lda));
      BYTELM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, t, tb ? n : k, tb ? k : n, ldb));
      BYTELM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, tc, m, n, ldc));
      BYTELM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, tc, m, n, ldd));
      cublasLtMatmulPreference_t pref = nullptr;
      BYTELM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
      uint64_t max_bytes = bytes;
      // split-K partials summed in fp32 in the workspace, never in a bf16 output
      uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
      cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
      cublasLtMatmulHeuristicResult_t results[kTuneCandidates]{};
      int found = 0, wanted = tune && !stream_capturing(stream) ? kTuneCandidates : 1;
      cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                               &max_bytes, sizeof max_bytes);
      if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
                                                  sizeof schemes);
      for (int i = 0; i < 4 && st == CUBLAS_STATUS_SUCCESS; i++)
        st = cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &align[i], sizeof align[i]);
      if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(handle, p.op, p.a, p.b, p.c, p.d, pref, wanted, results, &found);
      cublasLtMatmulPreferenceDestroy(pref);
      BYTELM_CUBLAS_CHECK(st);
      if (found == 0)
        throw Error("cuBLASLt has no algorithm for a " + std::to_string(m) + " x " + std::to_string(n) + " x " +
                    std::to_string(k) + " product");
      p.algo = results[0].algo;
      if (found > 1) p.algo = results[fastest(p, results, found, a, b, beta, c, d, ldd, m, n, sizeof(C), stream)].algo;
    } catch (...) {
      plans.erase(it);  // no half-made plan stays behind
      throw;
    }
    return p;
  }

  // Index of the fastest of results[0, found) on the product's own operands; ties keep the heuristic's order. The
  // runs write d, which the product itself then overwrites, except where d accumulates in place (beta != 0, c = d):
  // there they write a scratch copy of its shape (contents never read).
  int fastest(const LtPlan& p, const cublasLtMatmulHeuristicResult_t* results, int found, const void* a, const void* b,
              float beta, const void* c, const void* d, int ldd, int m, int n, size_t elem, cudaStream_t stream) {
    DeviceBuffer<uint8_t> scratch;
    void* out = const_cast<void*>(d);
    if (beta != 0.f && c == d) {
      scratch.assign_zero(((size_t)ldd * (n - 1) + m) * elem);
      out = scratch.data();
    }
    const void* in = out == d ? c : out;
    TimingEvents events;
    int best = 0;
    float best_ms = INFINITY;
    for (int i = 0; i < found; i++) {
      float ms = time_algo(handle, p, results[i].algo, a, b, beta, in, out, workspace, bytes, stream, events);
      if (ms < best_ms) best_ms = ms, best = i;
    }
    return best;
  }
};

void GemmLt::tune(bool on) { impl_->tune = on; }
bool GemmLt::tuning() const { return impl_->tune; }

// Column-major D = op(A) op(B) + beta C through cuBLASLt (C may be D), its plan found on first use.
template <class A, class C>
void lt_matmul(Gemm gemm, cudaStream_t stream, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
               const A* a, int lda, const A* b, int ldb, float beta, const C* c, int ldc, C* d, int ldd) {
  GemmLt::Impl& lt = gemm.lt->impl();
  const LtPlan& p = lt.plan(op_a, op_b, m, n, k, a, lda, b, ldb, beta, c, ldc, d, ldd, compute_for<A>(gemm), stream);
  const float one = 1.f;
  BYTELM_CUBLAS_CHECK(cublasLtMatmul(lt.handle, p.op, &one, a, p.a, b, p.b, &beta, c, p.c, d, p.d, &p.algo,
                                     lt.workspace, lt.bytes, stream));
}

GemmLt::GemmLt(void* workspace, size_t bytes) : impl_(std::make_unique<Impl>()) {
  impl_->workspace = workspace;
  impl_->bytes = bytes;
  BYTELM_CUBLAS_CHECK(cublasLtCreate(&impl_->handle));
}

GemmLt::~GemmLt() {
  impl_->plans.clear();
  if (impl_->handle) cublasLtDestroy(impl_->handle);
}

namespace {

// Column-major C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C, fp32 scalars and accumulation.
template <class A, class C>
void gemm_cm(Gemm gemm, cudaStream_t stream, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
             const A* a, int lda, const A* b, int ldb, float beta, C* c, int ldc) {
  OpScope scope_([&] {
    return shape_name(op_a, op_b, m, n, k, beta != 0.f ? " +C" : std::is_same_v<C, float> ? " f32" : "");
  });
  if (cuda_type<A>() == CUDA_R_16BF && gemm.lt && gemm.lt->tuning())  // tuned bf16 products: cuBLASLt (GemmLt::tune)
    return lt_matmul(gemm, stream, op_a, op_b, m, n, k, a, lda, b, ldb, beta, (const C*)c, ldc, c, ldc);
  const float alpha = 1.f;
  cublasComputeType_t compute = compute_for<A>(gemm);
  BYTELM_CUBLAS_CHECK(cublasSetStream(gemm.handle, stream));
  BYTELM_CUBLAS_CHECK(cublasGemmEx(gemm.handle, op_a, op_b, m, n, k, &alpha, a, cuda_type<A>(), lda, b, cuda_type<A>(),
                                   ldb, &beta, c, cuda_type<C>(), ldc, compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

template <class A>
void gemm_rows_add_cuda(bool trans_a, bool trans_b, int M, int N, int K, const A* a, int lda, const A* b, int ldb,
                        const A* c, int ldc, A* d, int ldd, Gemm gemm, cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  if (!gemm.lt) throw Error("gemm_rows_add_cuda: no cuBLASLt handle (Gemm::lt)");
  // D^T[N,M] = C^T + op(B)^T op(A)^T in column-major, as in gemm_rows_cuda
  cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  OpScope scope_([&] { return shape_name(op_b, op_a, N, M, K, " C!=D"); });
  lt_matmul(gemm, stream, op_b, op_a, N, M, K, b, ldb, a, lda, 1.f, c, ldc, d, ldd);
}

template <class A, class C>
void gemm_rows_cuda(bool trans_a, bool trans_b, int M, int N, int K, const A* a, int lda, const A* b, int ldb,
                    float beta, C* c, int ldc, Gemm gemm, cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  // C^T[N,M] = op(B)^T op(A)^T in column-major, where a row-major operand is its own transpose.
  gemm_cm(gemm, stream, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, b, ldb, a,
          lda, beta, c, ldc);
}

template <class A>
void linear_forward_cuda(A* y, const A* x, const A* W, int N, int in, int out, Gemm gemm, cudaStream_t stream) {
  if (N == 0 || out == 0) return;
  // y^T[out,N] = W[out,in] x^T[in,N]; W is stored as column-major W^T[in,out], hence op T.
  gemm_cm(gemm, stream, CUBLAS_OP_T, CUBLAS_OP_N, out, N, in, W, in, x, in, 0.f, y, out);
}

template <class A>
void linear_backward_cuda(A* dx, float* dW, const A* dy, const A* x, const A* W, int N, int in, int out,
                          bool accumulate_dx, Gemm gemm, cudaStream_t stream) {
  if (N == 0 || in == 0 || out == 0) return;
  // dW^T[in,out] += x^T[in,N] dy[N,out]; dy is stored as column-major dy^T[out,N], hence op T.
  gemm_cm(gemm, stream, CUBLAS_OP_N, CUBLAS_OP_T, in, out, N, x, in, dy, out, 1.f, dW, in);
  // dx^T[in,N] (+)= W^T[in,out] dy^T[out,N]
  if (dx) gemm_cm(gemm, stream, CUBLAS_OP_N, CUBLAS_OP_N, in, N, out, W, in, dy, out, accumulate_dx ? 1.f : 0.f, dx, in);
}

template void gemm_rows_cuda<float, float>(bool, bool, int, int, int, const float*, int, const float*, int, float,
                                           float*, int, Gemm, cudaStream_t);
template void gemm_rows_cuda<bf16, bf16>(bool, bool, int, int, int, const bf16*, int, const bf16*, int, float, bf16*,
                                         int, Gemm, cudaStream_t);
template void gemm_rows_cuda<bf16, float>(bool, bool, int, int, int, const bf16*, int, const bf16*, int, float,
                                          float*, int, Gemm, cudaStream_t);
#define BYTELM_INSTANTIATE(A)                                                                                    \
  template void gemm_rows_add_cuda<A>(bool, bool, int, int, int, const A*, int, const A*, int, const A*, int, A*,  \
                                      int, Gemm, cudaStream_t);                                                  \
  template void linear_forward_cuda<A>(A*, const A*, const A*, int, int, int, Gemm, cudaStream_t);              \
  template void linear_backward_cuda<A>(A*, float*, const A*, const A*, const A*, int, int, int, bool, Gemm,     \
                                        cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
