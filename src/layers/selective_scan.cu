// Selective scan on the GPU. A block is one sequence and a tile of 32 channels, 512 threads: thread (c, n) =
// (threadIdx.x / 16, threadIdx.x % 16) owns state n of channel c, so a half-warp is one channel's 16 states and every
// state of the B x Di x 16 gets a thread (131k at mamba-10m's batch 16: some 30 warps an SM; a thread a channel gave
// 8k, 2 warps an SM, latency-bound). A thread walks time with its one state in a register through the CPU's
// recurrence (exp(delta A) in (0, 1] a step: no cumulative sums, no carries recombined), so the streaming step
// (T = 1, state carried) gives the whole sequence's bits.
//
// The block stages kRows rows of inputs in shared memory at a time (coalesced loads of the tile's 32 channels;
// softplus, and in the backward the gate's SiLU and sigmoid, once per (row, channel) there instead of once per state).
// Sums over a channel's 16 states (y; dx and d delta) are deferred: a thread keeps its terms of 16 sums (16 rows of
// y, or 8 rows of dx and of d delta) and the half-warp adds them in a transposed butterfly (half_warp_transpose_sum:
// 15 shuffles for 16 sums, about one a row), which leaves sum k in lane k; outputs go through shared memory to
// coalesced stores.
//
// Backward, per block:
//   1. the recurrence from zero over the sequence: the states before every kRows-row segment to global scratch
//      (B T/kRows N Di floats), dz and the sequence's dD;
//   2. the segments from the last: staged once, rerun from their boundary keeping the state before every kSub rows
//      in registers, then each kSub-row piece, last first, rerun keeping its states and decays in registers and
//      walked backward carrying dh.
// dB and dC sum over channels: the warp's two channels by one shuffle, the block's 16 warps in warp order through
// shared memory, the tiles in tile order in scan_dbc_kernel. dA, dD and d dt_bias sum over sequences: a partial per
// sequence, added in sequence order. No atomics: the backward is bit-reproducible.
#include "core/bf16.h"
#include "core/error.h"
#include "layers/activations.cuh"
#include "layers/cuda_common.cuh"
#include "layers/selective_scan_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

constexpr int kMaxN = kSelectiveScanMaxState;  // lanes a channel
constexpr int kTile = 32;                      // channels a block
constexpr int kBlock = kTile * kMaxN;          // threads a block
constexpr int kWarps = kBlock / 32;
constexpr int kRows = kSelectiveScanRows;  // rows a staged segment
constexpr int kSub = kMaxN / 2;            // rows a backward piece: its dx and d delta are 16 sums
constexpr int kPieces = kRows / kSub;
static_assert(kMaxN == 16 && kRows % kMaxN == 0 && kRows % kSub == 0, "half-warp sums of 16; whole groups a segment");

// A thread's place: channel c of the block's tile (i of Di) and state n.
struct Place {
  int c, n, i;
  bool active;  // i < Di and n < N; the others run along with zeros (A = B = C = 0: decay 1, state 0)
};

__device__ inline Place place(int Di, int N) {
  int c = threadIdx.x / kMaxN, n = threadIdx.x % kMaxN, i = blockIdx.x * kTile + c;
  return {c, n, i, i < Di && n < N};
}

// kRows consecutive rows of one sequence for the tile: per (row, channel) four numbers (forward: delta, x, z, dy;
// backward walk: delta, x, dgate = dy silu(z), sigmoid(dt + dt_bias)) and per (row, state) B and C. out holds
// outputs [row][channel] on their way to coalesced stores.
struct Rows {
  float4 ch[kRows][kTile];
  float2 bc[kRows][kMaxN];
  float out[2][kRows][kTile];
};

// Rows row0 .. row0 + len - 1 into st (dy: null in the forward); past len and Di, zeros. Every thread takes part.
template <bool kWalk, class T>
__device__ inline void stage_rows(Rows& st, ScanInputs<T> in, const T* dy, const float* dt_bias, size_t row0, int len,
                                  int Di, int N) {
  __syncthreads();  // every thread is done with the rows staged before
  int i0 = blockIdx.x * kTile;
  for (int e = threadIdx.x; e < kRows * kTile; e += kBlock) {
    int s = e / kTile, c = e % kTile, i = i0 + c;
    float4 q = make_float4(0.f, 0.f, 0.f, 0.f);
    if (s < len && i < Di) {
      size_t k = (row0 + s) * Di + i;
      float pre = (float)in.dt[k] + dt_bias[i], x = (float)in.x[k], z = (float)in.z[k], g = dy ? (float)dy[k] : 0.f;
      float delta = softplus(pre);
      q = kWalk ? make_float4(delta, x, g * silu(z), sigmoid(pre)) : make_float4(delta, x, z, g);
    }
    st.ch[s][c] = q;
  }
  for (int e = threadIdx.x; e < kRows * kMaxN; e += kBlock) {
    int s = e / kMaxN, n = e % kMaxN;
    float2 bc = make_float2(0.f, 0.f);
    if (s < len && n < N) {
      const T* r = in.BC + (row0 + s) * 2 * N;
      bc = make_float2((float)r[n], (float)r[N + n]);
    }
    st.bc[s][n] = bc;
  }
  __syncthreads();  // the rows are visible to every thread
}

// Rows s0 .. s1 - 1 of out to dst (row-major, Di wide, row row0 + s), the tile's channels. After a barrier.
template <class T>
__device__ inline void store_rows(T* dst, const float (&out)[kRows][kTile], size_t row0, int s0, int s1, int Di) {
  int i0 = blockIdx.x * kTile;
  for (int e = threadIdx.x; e < (s1 - s0) * kTile; e += kBlock) {
    int s = s0 + e / kTile, c = e % kTile;
    if (i0 + c < Di) dst[(row0 + s) * Di + i0 + c] = (T)out[s][c];
  }
}

// One step of one state, the CPU's scan_step: h <- exp(delta A) h + delta x B; returns the decay exp(delta A).
__device__ inline float scan_step(float& h, float A, float4 q, float2 bc) {
  float decay = expf(q.x * A);
  h = decay * h + q.x * q.y * bc.x;
  return decay;
}

// After the call lane k of each half-warp (k = lane % 16) holds the sum over the half-warp's 16 lanes of v[k]: a
// reduce-scatter by halves, where at each round (offset O = 8, 4, 2, 1) a lane keeps the half of its values whose
// index has the lane's bit O and adds its partner's copy of them. 15 shuffles for 16 sums. Every sum is added in the
// same tree (lanes paired by bit 3, then 2, 1, 0; a + b is b + a in floating point too), so its bits do not depend on
// the lane it lands in. The rounds are a template recursion so that every index is a constant and v stays in
// registers.
template <int O = kMaxN / 2>
__device__ inline float half_warp_transpose_sum(float (&v)[kMaxN]) {
  bool upper = threadIdx.x & O;
#pragma unroll
  for (int j = 0; j < O; j++) {
    float send = upper ? v[j] : v[j + O];
    float keep = upper ? v[j + O] : v[j];
    v[j] = keep + __shfl_xor_sync(0xffffffffu, send, O);
  }
  if constexpr (O > 1) return half_warp_transpose_sum<O / 2>(v);
  else return v[0];
}

// The sum over the half-warp's lanes of v, the same bits in every lane.
__device__ inline float half_warp_sum(float v) {
#pragma unroll
  for (int o = kMaxN / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Steps the state h through staged rows s0 .. s0 + 15 (those below len); returns in lane k of the half-warp the
// channel's sum_n C_n h_n after row s0 + k.
__device__ inline float scan_group(float& h, float A, const Rows& st, int s0, int len, Place p) {
  float v[kMaxN];
#pragma unroll
  for (int s = 0; s < kMaxN; s++) {
    v[s] = 0.f;
    if (s0 + s < len) {
      float2 bc = st.bc[s0 + s][p.n];
      scan_step(h, A, st.ch[s0 + s][p.c], bc);
      v[s] = bc.y * h;
    }
  }
  return half_warp_transpose_sum(v);
}

template <class T>
__global__ void __launch_bounds__(kBlock) scan_forward_kernel(T* y, ScanInputs<T> in, SelectiveScanWeights<float> w,
                                                              int T_, int Di, int N, float* state) {
  __shared__ Rows st;
  Place p = place(Di, N);
  int b = blockIdx.y;
  float A = p.active ? -expf(w.A_log[(size_t)p.i * N + p.n]) : 0.f, D = p.i < Di ? w.D[p.i] : 0.f;
  float* hs = p.active && state ? state + ((size_t)b * N + p.n) * Di + p.i : nullptr;
  float h = hs ? *hs : 0.f;
  for (int t0 = 0; t0 < T_; t0 += kRows) {
    int len = min(kRows, T_ - t0);
    size_t row0 = (size_t)b * T_ + t0;
    stage_rows<false>(st, in, (const T*)nullptr, w.dt_bias, row0, len, Di, N);
#pragma unroll
    for (int s0 = 0; s0 < kRows; s0 += kMaxN) {
      if (s0 >= len) break;  // the same in every thread
      float out = scan_group(h, A, st, s0, len, p);
      int s = s0 + p.n;
      if (s < len) {
        float4 q = st.ch[s][p.c];  // delta, x, z
        st.out[0][s][p.c] = (out + D * q.y) * silu(q.z);
      }
    }
    __syncthreads();
    store_rows(y, st.out[0], row0, 0, len, Di);
  }
  if (hs) *hs = h;
}

// bounds [B, tiles, segments, kBlock]: each thread's state before each segment.
// Per-tile partials of dB and dC: bc_part [B*T, tiles, 32], lane n < kMaxN dB_n, lane kMaxN + n dC_n.
// Per-sequence partials of the weight gradients: w_part [B, N + 2, Di], d/dA [N] then dD then d dt_bias.
// Two blocks an SM: ptxas fits the backward in 64 registers without spilling.
template <class T>
__global__ void __launch_bounds__(kBlock, 2)
    scan_backward_kernel(ScanInputGrads<T> gin, float* bounds, float* bc_part, float* w_part, const T* dy,
                         ScanInputs<T> in, SelectiveScanWeights<float> w, int T_, int Di, int N) {
  __shared__ Rows st;
  __shared__ float part[kWarps][kSub][32];  // a warp's dB (lanes < 16) and dC (lanes 16..) of a piece's rows
  Place p = place(Di, N);
  int b = blockIdx.y, tiles = gridDim.x, segs = (T_ + kRows - 1) / kRows, lane = threadIdx.x % 32;
  float A = p.active ? -expf(w.A_log[(size_t)p.i * N + p.n]) : 0.f, D = p.i < Di ? w.D[p.i] : 0.f;
  float* bnd = bounds + ((size_t)b * tiles + blockIdx.x) * segs * kBlock + threadIdx.x;

  // 1. the recurrence from zero: boundaries, dz, dD
  float h = 0.f, dD = 0.f;
  for (int sg = 0; sg < segs; sg++) {
    int len = min(kRows, T_ - sg * kRows);
    size_t row0 = (size_t)b * T_ + (size_t)sg * kRows;
    stage_rows<false>(st, in, dy, w.dt_bias, row0, len, Di, N);
    bnd[(size_t)sg * kBlock] = h;
#pragma unroll
    for (int s0 = 0; s0 < kRows; s0 += kMaxN) {
      if (s0 >= len) break;
      float out = scan_group(h, A, st, s0, len, p);
      int s = s0 + p.n;
      if (s < len) {
        float4 q = st.ch[s][p.c];  // delta, x, z, dy
        st.out[0][s][p.c] = q.w * (out + D * q.y) * silu_grad(q.z);
        dD += q.w * silu(q.z) * q.y;
      }
    }
    __syncthreads();
    store_rows(gin.z, st.out[0], row0, 0, len, Di);
  }

  // 2. the segments from the last, each rerun, then walked backward a piece at a time
  float dh = 0.f, dA = 0.f, dbias = 0.f;
  for (int sg = segs - 1; sg >= 0; sg--) {
    int len = min(kRows, T_ - sg * kRows);
    size_t row0 = (size_t)b * T_ + (size_t)sg * kRows;
    stage_rows<true>(st, in, dy, w.dt_bias, row0, len, Di, N);
    float start[kPieces];  // the state before each piece
    h = bnd[(size_t)sg * kBlock];
#pragma unroll
    for (int k = 0; k < kPieces; k++) {
      start[k] = h;
#pragma unroll
      for (int j = 0; j < kSub; j++)
        if (k * kSub + j < len) scan_step(h, A, st.ch[k * kSub + j][p.c], st.bc[k * kSub + j][p.n]);
    }
#pragma unroll
    for (int k = kPieces - 1; k >= 0; k--) {
      int s0 = k * kSub;
      if (s0 >= len) continue;  // the same in every thread
      float hist[kSub + 1], decay[kSub];  // hist[j]: the state before row s0 + j
      hist[0] = start[k];
#pragma unroll
      for (int j = 0; j < kSub; j++) {
        hist[j + 1] = hist[j];
        decay[j] = s0 + j < len ? scan_step(hist[j + 1], A, st.ch[s0 + j][p.c], st.bc[s0 + j][p.n]) : 1.f;
      }
      float v[kMaxN];  // this state's terms of the piece's dx (rows 0..kSub-1), then of its d delta
#pragma unroll
      for (int j = kSub - 1; j >= 0; j--) {
        float dB = 0.f, dC = 0.f;
        v[j] = v[kSub + j] = 0.f;
        if (s0 + j < len) {
          float4 q = st.ch[s0 + j][p.c];  // delta, x, dgate, sigmoid(dt + dt_bias)
          float2 bc = st.bc[s0 + j][p.n];
          float dhn = dh + q.z * bc.y;  // all of d/d(h_t)
          dC = q.z * hist[j + 1];
          dB = dhn * (q.x * q.y);
          v[j] = dhn * q.x * bc.x;
          v[kSub + j] = dhn * (A * decay[j] * hist[j] + bc.x * q.y);
          dA += dhn * q.x * decay[j] * hist[j];
          dh = dhn * decay[j];  // carried to h_{t-1}
        }
        // the warp's two channels: lane n keeps dB_n, lane 16 + n dC_n
        bool upper = lane >= kMaxN;
        part[threadIdx.x / 32][j][lane] = (upper ? dC : dB) + __shfl_xor_sync(0xffffffffu, upper ? dB : dC, kMaxN);
      }
      float sum = half_warp_transpose_sum(v);  // lane j < kSub: row s0 + j's dx terms; lane kSub + j: its d delta's
      int s = s0 + p.n % kSub;
      if (s < len) {
        float4 q = st.ch[s][p.c];
        if (p.n < kSub) {
          st.out[0][s][p.c] = sum + q.z * D;
        } else {
          float ddt = sum * q.w;  // softplus' = sigmoid
          st.out[1][s][p.c] = ddt;
          dbias += ddt;
        }
      }
      __syncthreads();
      int s1 = min(len, s0 + kSub);
      if (threadIdx.x < kSub * 32) {  // the piece's dB and dC: the warps in order
        int j = threadIdx.x / 32;
        if (s0 + j < s1) {
          float t = 0.f;
          for (int warp = 0; warp < kWarps; warp++) t += part[warp][j][lane];
          bc_part[((row0 + s0 + j) * tiles + blockIdx.x) * 32 + lane] = t;
        }
      }
      store_rows(gin.x, st.out[0], row0, s0, s1, Di);
      store_rows(gin.dt, st.out[1], row0, s0, s1, Di);
      __syncthreads();  // part and out are rewritten by the next piece
    }
  }
  dD = half_warp_sum(dD);
  dbias = half_warp_sum(dbias);
  float* wp = w_part + (size_t)b * (N + 2) * Di + p.i;
  if (p.active) wp[(size_t)p.n * Di] = dA;
  if (p.i < Di && p.n == 0) {
    wp[(size_t)N * Di] = dD;
    wp[(size_t)(N + 1) * Di] = dbias;
  }
}
// dBC [rows, 2N] = the sum over the tiles of their partials, in tile order.
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
    size_t segs = (T_ + kRows - 1) / kRows, tiles = (Di + kTile - 1) / kTile;
    size_t n_bounds = (size_t)B * tiles * segs * kBlock, n_bc = (size_t)B * T_ * tiles * 32;
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
  scan_forward_kernel<<<dim3((Di + kTile - 1) / kTile, B), kBlock, 0, stream>>>(y, in, w, T_, Di, N, state);
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
  int tiles = (Di + kTile - 1) / kTile, rows = B * T_;
  scan_backward_kernel<<<dim3(tiles, B), kBlock, 0, stream>>>(grad_in, ws.bounds, ws.bc_part, ws.w_part, dy, in, w, T_,
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
