// Selective scan on the GPU. A block is one warp: 32 consecutive channels of one sequence (lane = channel, so
// the loads of x, dt, z and dy are 32 consecutive elements). The warp stages kChunk rows of inputs at a time in
// shared memory (StagedRows: one burst of loads instead of a memory latency a step), then each thread steps its
// channel through them with h [N] in registers, exactly the CPU's recurrence (exp(delta A) in (0, 1] a step: no
// cumulative sums, nothing to overflow at any length).
//
// Backward, per thread, three walks over time:
//   1. the recurrence from zero, storing the state before every chunk of kChunk steps (the only global
//      scratch that grows with T: B T/kChunk N Di floats) and, since it has the output before the gate, dz and
//      the sequence's dD;
//   2. and 3., chunk by chunk from the last: the chunk's states recomputed from its boundary into shared memory
//      (each lane its own column: no synchronisation), then the chunk walked backward carrying dh [N].
// dB and dC sum over channels: the warp sums its 32 lanes' values in a fixed butterfly (warp_transpose_sum),
// the warps' partials are then added in warp order. dA, dD and d dt_bias sum over sequences: a partial per
// sequence, added in sequence order.
#include "core/bf16.h"
#include "core/error.h"
#include "layers/activations.cuh"
#include "layers/cuda_common.cuh"
#include "layers/selective_scan_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

constexpr int kMaxN = kSelectiveScanMaxState;
constexpr int kChunk = kSelectiveScanChunk;
static_assert(2 * kMaxN == 32, "dB and dC of a row fill one warp's 32 lanes");

// A[n] = -exp(A_log[i, n]) for n < N (0 past N and for inactive lanes), as the CPU's state_matrix.
__device__ inline void load_state_matrix(float (&A)[kMaxN], const float* A_log, int i, int N, bool active) {
#pragma unroll
  for (int n = 0; n < kMaxN; n++) A[n] = active && n < N ? -expf(A_log[(size_t)i * N + n]) : 0.f;
}

// One step of one channel: h <- exp(delta A) h + delta x B; returns sum_n C[n] h[n] (the CPU's scan_step).
template <class T>
__device__ inline float scan_step(float (&h)[kMaxN], const float (&A)[kMaxN], const T* BC, int N, float delta,
                                  float delta_x) {
  float out = 0.f;
#pragma unroll
  for (int n = 0; n < kMaxN; n++) {
    if (n < N) {
      float decay = expf(delta * A[n]);
      h[n] = decay * h[n] + delta_x * (float)BC[n];
      out += (float)BC[N + n] * h[n];
    }
  }
  return out;
}

// After the call lane l holds the sum over the warp's 32 lanes of v[l]: a reduce-scatter by halves, where at
// each round (offset O = 16, 8, .., 1) a lane keeps the half of its values whose index has the lane's bit O
// and adds its partner's copy of them. 31 shuffles for 32 sums, in an order fixed by the lane alone. The rounds
// are a template recursion so that every index is a constant and v stays in registers.
template <int O = 16>
__device__ inline float warp_transpose_sum(float (&v)[32]) {
  bool upper = threadIdx.x & O;
#pragma unroll
  for (int j = 0; j < O; j++) {
    float send = upper ? v[j] : v[j + O];
    float keep = upper ? v[j + O] : v[j];
    v[j] = keep + __shfl_xor_sync(0xffffffffu, send, O);
  }
  if constexpr (O > 1) return warp_transpose_sum<O / 2>(v);
  else return v[0];
}

// The inputs of up to kChunk consecutive rows of one sequence, staged in shared memory by the warp in one burst
// of independent loads (a thread walking time would otherwise wait a memory latency at every step): each row's B
// and C (lane j loads element j of the row) and the warp's 32 channels of x, dt + dt_bias, z and dy (backward).
struct StagedRows {
  float BC[kChunk][32];
  float x[kChunk][32], pre[kChunk][32], z[kChunk][32], dy[kChunk][32];
};

// Rows row0 .. row0 + len - 1 into st (dy: null in the forward). Every lane of the warp takes part.
template <class T>
__device__ inline void stage_rows(StagedRows& st, ScanInputs<T> in, const T* dy, size_t row0, int len, int Di, int N,
                                  int i, bool active, float bias) {
  int lane = threadIdx.x % 32;
  __syncwarp();  // every lane is done with the rows staged before
#pragma unroll
  for (int s = 0; s < kChunk; s++) {
    if (s < len) {
      size_t row = row0 + s, k = row * Di + i;
      st.BC[s][lane] = lane < 2 * N ? (float)in.BC[row * 2 * N + lane] : 0.f;
      st.x[s][lane] = active ? (float)in.x[k] : 0.f;
      st.pre[s][lane] = active ? (float)in.dt[k] + bias : 0.f;
      st.z[s][lane] = active ? (float)in.z[k] : 0.f;
      if (dy) st.dy[s][lane] = active ? (float)dy[k] : 0.f;
    }
  }
  __syncwarp();  // the rows are visible to every lane
}

template <class T>
__global__ void __launch_bounds__(32) scan_forward_kernel(T* y, ScanInputs<T> in, SelectiveScanWeights<float> w,
                                                          int T_, int Di, int N, float* state) {
  __shared__ StagedRows st;
  int lane = threadIdx.x, i = blockIdx.x * 32 + lane, b = blockIdx.y;
  bool active = i < Di;  // inactive lanes still help stage the rows
  float A[kMaxN], h[kMaxN];
  load_state_matrix(A, w.A_log, i, N, active);
  float* hs = active && state ? state + (size_t)b * N * Di + i : nullptr;
#pragma unroll
  for (int n = 0; n < kMaxN; n++) h[n] = hs && n < N ? hs[(size_t)n * Di] : 0.f;
  float D = active ? w.D[i] : 0.f, bias = active ? w.dt_bias[i] : 0.f;
  for (int t0 = 0; t0 < T_; t0 += kChunk) {
    int len = min(kChunk, T_ - t0);
    size_t row0 = (size_t)b * T_ + t0;
    stage_rows(st, in, (const T*)nullptr, row0, len, Di, N, i, active, bias);
    if (!active) continue;
    for (int s = 0; s < len; s++) {
      float x = st.x[s][lane], delta = softplus(st.pre[s][lane]);
      float out = scan_step(h, A, st.BC[s], N, delta, delta * x);
      y[(row0 + s) * Di + i] = (T)((out + D * x) * silu(st.z[s][lane]));
    }
  }
  if (hs) {
#pragma unroll
    for (int n = 0; n < kMaxN; n++)
      if (n < N) hs[(size_t)n * Di] = h[n];
  }
}

// Per-warp partials of dB and dC: bc_part [B*T, tiles, 32], lane n < kMaxN dB_n, lane kMaxN + n dC_n.
// Per-sequence partials of the weight gradients: w_part [B, N + 2, Di], d/dA [N] then dD then d dt_bias.
template <class T>
__global__ void __launch_bounds__(32)
    scan_backward_kernel(ScanInputGrads<T> gin, float* bounds, float* bc_part, float* w_part, const T* dy,
                         ScanInputs<T> in, SelectiveScanWeights<float> w, int T_, int Di, int N) {
  __shared__ float hist[kChunk + 1][kMaxN][32];  // hist[s][n]: the state before step s of the chunk
  __shared__ StagedRows st;
  int lane = threadIdx.x, i = blockIdx.x * 32 + lane, b = blockIdx.y, tiles = gridDim.x;
  bool active = i < Di;  // inactive lanes still stage rows and take part in the warp sums, with zeros
  int chunks = (T_ + kChunk - 1) / kChunk;
  float A[kMaxN], h[kMaxN];
  load_state_matrix(A, w.A_log, i, N, active);
  float D = active ? w.D[i] : 0.f, bias = active ? w.dt_bias[i] : 0.f;
  float* bnd = bounds + (size_t)b * chunks * N * Di + i;  // [chunks, N, Di] of this sequence

  // 1. the recurrence from zero: boundaries, dz, dD
  float dD = 0.f;
#pragma unroll
  for (int n = 0; n < kMaxN; n++) h[n] = 0.f;
  for (int c = 0; c < chunks; c++) {
    int len = min(kChunk, T_ - c * kChunk);
    size_t row0 = (size_t)b * T_ + c * kChunk;
    stage_rows(st, in, dy, row0, len, Di, N, i, active, bias);
    if (!active) continue;
#pragma unroll
    for (int n = 0; n < kMaxN; n++)
      if (n < N) bnd[((size_t)c * N + n) * Di] = h[n];
    for (int s = 0; s < len; s++) {
      float x = st.x[s][lane], delta = softplus(st.pre[s][lane]), z = st.z[s][lane], g = st.dy[s][lane];
      float out = scan_step(h, A, st.BC[s], N, delta, delta * x);
      gin.z[(row0 + s) * Di + i] = (T)(g * (out + D * x) * silu_grad(z));
      dD += g * silu(z) * x;
    }
  }

  // 2. and 3.: the chunks from the last, each recomputed, then walked backward
  float dh[kMaxN], dA[kMaxN], dbias = 0.f;
#pragma unroll
  for (int n = 0; n < kMaxN; n++) dh[n] = dA[n] = 0.f;
  for (int c = chunks - 1; c >= 0; c--) {
    int len = min(kChunk, T_ - c * kChunk);
    size_t row0 = (size_t)b * T_ + c * kChunk;
    stage_rows(st, in, dy, row0, len, Di, N, i, active, bias);
    if (active) {
#pragma unroll
      for (int n = 0; n < kMaxN; n++) {
        h[n] = n < N ? bnd[((size_t)c * N + n) * Di] : 0.f;
        hist[0][n][lane] = h[n];
      }
      for (int s = 0; s < len; s++) {
        float delta = softplus(st.pre[s][lane]);
        scan_step(h, A, st.BC[s], N, delta, delta * st.x[s][lane]);
#pragma unroll
        for (int n = 0; n < kMaxN; n++) hist[s + 1][n][lane] = h[n];
      }
    }
    for (int s = len - 1; s >= 0; s--) {
      size_t row = row0 + s, k = row * Di + i;
      float v[32];  // this lane's dB (0..kMaxN-1) and dC (kMaxN..) for the row
#pragma unroll
      for (int j = 0; j < 32; j++) v[j] = 0.f;
      if (active) {
        const float* BC = st.BC[s];
        float x = st.x[s][lane], pre = st.pre[s][lane], z = st.z[s][lane];
        float delta = softplus(pre), delta_x = delta * x;
        float dgate = st.dy[s][lane] * silu(z);  // d/d(C.h + D x)
        float dx = dgate * D, ddelta = 0.f;
#pragma unroll
        for (int n = 0; n < kMaxN; n++) {
          if (n < N) {
            float Bn = BC[n], Cn = BC[N + n];
            float h_prev = hist[s][n][lane], h_t = hist[s + 1][n][lane], decay = expf(delta * A[n]);
            float dhn = dh[n] + dgate * Cn;  // all of d/d(h_t[n])
            v[kMaxN + n] = dgate * h_t;
            v[n] = dhn * delta_x;
            dx += dhn * delta * Bn;
            ddelta += dhn * (A[n] * decay * h_prev + Bn * x);
            dA[n] += dhn * delta * decay * h_prev;
            dh[n] = dhn * decay;  // carried to h_{t-1}
          }
        }
        float ddt = ddelta * sigmoid(pre);  // softplus' = sigmoid
        gin.dt[k] = (T)ddt;
        gin.x[k] = (T)dx;
        dbias += ddt;
      }
      float sum = warp_transpose_sum(v);
      bc_part[(row * tiles + blockIdx.x) * 32 + lane] = sum;
    }
  }
  if (active) {
    float* wp = w_part + (size_t)b * (N + 2) * Di + i;
#pragma unroll
    for (int n = 0; n < kMaxN; n++)
      if (n < N) wp[(size_t)n * Di] = dA[n];
    wp[(size_t)N * Di] = dD;
    wp[(size_t)(N + 1) * Di] = dbias;
  }
}

// dBC [rows, 2N] = the sum over the warps (tiles) of their partials, in warp order.
template <class T>
__global__ void scan_dbc_kernel(T* dBC, const float* bc_part, int rows, int tiles, int N) {
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)rows * 2 * N) return;
  size_t row = e / (2 * N);
  int col = (int)(e % (2 * N)), slot = col < N ? col : kMaxN + col - N;
  const float* p = bc_part + row * tiles * 32 + slot;
  float s = 0.f;
  for (int tile = 0; tile < tiles; tile++) s += p[(size_t)tile * 32];
  dBC[e] = (T)s;
}

// The weight gradients: the per-sequence partials summed in sequence order; dA_log = dA * A (dA/dA_log = A).
__global__ void scan_weight_grads_kernel(SelectiveScanGrads<float> g, const float* w_part, const float* A_log, int B,
                                         int Di, int N) {
  int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= Di * (N + 2)) return;
  int k = e / Di, i = e % Di;
  float s = 0.f;
  for (int b = 0; b < B; b++) s += w_part[((size_t)b * (N + 2) + k) * Di + i];
  if (k < N) g.A_log[(size_t)i * N + k] += s * -expf(A_log[(size_t)i * N + k]);
  else if (k == N) g.D[i] += s;
  else g.dt_bias[i] += s;
}

void check_state(int N) {
  if (N < 1 || N > kMaxN)
    throw Error("the GPU selective scan takes states N in 1.." + std::to_string(kMaxN) + ", got " + std::to_string(N));
}

struct BackwardWorkspace {
  float *bounds, *bc_part, *w_part;
  size_t floats;
  BackwardWorkspace(void* base, int B, int T_, int Di, int N) {
    size_t chunks = (T_ + kChunk - 1) / kChunk, tiles = (Di + 31) / 32;
    size_t n_bounds = (size_t)B * chunks * N * Di, n_bc = (size_t)B * T_ * tiles * 32;
    bounds = (float*)base;
    bc_part = bounds ? bounds + n_bounds : nullptr;
    w_part = bc_part ? bc_part + n_bc : nullptr;
    floats = n_bounds + n_bc + (size_t)B * (N + 2) * Di;
  }
};

}  // namespace

template <class A>
void selective_scan_forward_cuda(A* y, ScanInputs<A> in, SelectiveScanWeights<float> w, int B, int T_, int Di, int N,
                                 float* state, cudaStream_t stream) {
  check_state(N);
  if (B == 0 || T_ == 0 || Di == 0) return;
  scan_forward_kernel<<<dim3((Di + 31) / 32, B), 32, 0, stream>>>(y, in, w, T_, Di, N, state);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

size_t selective_scan_backward_cuda_workspace_bytes(int B, int T_, int Di, int N) {
  return BackwardWorkspace(nullptr, B, T_, Di, N).floats * sizeof(float);
}

template <class A>
void selective_scan_backward_cuda(ScanInputGrads<A> grad_in, SelectiveScanGrads<float> g, const A* dy,
                                  ScanInputs<A> in, SelectiveScanWeights<float> w, int B, int T_, int Di, int N,
                                  void* workspace, cudaStream_t stream) {
  check_state(N);
  if (B == 0 || T_ == 0 || Di == 0) return;
  BackwardWorkspace ws(workspace, B, T_, Di, N);
  int tiles = (Di + 31) / 32, rows = B * T_;
  scan_backward_kernel<<<dim3(tiles, B), 32, 0, stream>>>(grad_in, ws.bounds, ws.bc_part, ws.w_part, dy, in, w, T_,
                                                          Di, N);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  scan_dbc_kernel<<<blocks_for((size_t)rows * 2 * N), kThreads, 0, stream>>>(grad_in.BC, ws.bc_part, rows, tiles, N);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  scan_weight_grads_kernel<<<blocks_for((size_t)Di * (N + 2)), kThreads, 0, stream>>>(g, ws.w_part, w.A_log, B, Di, N);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

#define BYTELM_INSTANTIATE(A)                                                                                       \
  template void selective_scan_forward_cuda<A>(A*, ScanInputs<A>, SelectiveScanWeights<float>, int, int, int, int, \
                                               float*, cudaStream_t);                                               \
  template void selective_scan_backward_cuda<A>(ScanInputGrads<A>, SelectiveScanGrads<float>, const A*,            \
                                                ScanInputs<A>, SelectiveScanWeights<float>, int, int, int, int,     \
                                                void*, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
