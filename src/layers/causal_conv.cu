// Depthwise causal convolution + SiLU on the GPU, in two regimes.
//
// Short widths (K <= kCausalConvMaxWidth, Mamba's 4): a thread per (row, channel) in the forward and for dx
// (which recomputes the K pre-activations it needs: K^2 multiply-adds, cheaper than storing them); dw and
// dbias in a row-striding kernel whose per-block partial sums are added in block order.
//
// Long widths (the hybrid's K = 256, any K): B T C K multiply-adds a pass, so the work is arithmetic, and the
// kernels keep it in shared memory and registers. A block owns 32 channels (a warp's lanes) and 128 rows; it
// stages the inputs its rows read and the taps in chunks, and each thread runs a register window along time
// (slide_fma): one new input and one tap a step for 16 multiply-adds. The backward materialises
// g = dy silu'(pre) (the pre-activations recomputed by the same tile kernel), then dx is the same convolution
// of g run backwards in time, and dw a correlation of g with x summed per (sequence, segment) block and then
// across blocks in a fixed order. The forward on a few rows (streaming steps) runs a thread per (sequence,
// channel) on taps staged in shared memory.
//
// Every pre-activation is bias + w[0] x[..] + w[1] x[..] + ... as one fmaf chain in tap order in either
// kernel, so stepping a stream one row at a time gives the whole sequence's forward to the bit.
#include <type_traits>

#include "core/bf16.h"
#include "core/error.h"
#include "layers/activations.cuh"
#include "layers/causal_conv_cuda.h"
#include "layers/cuda_common.cuh"

namespace bytelm {

using namespace cuda;

namespace {

// bias[c] + sum_k w[c, k] x[t - (K-1) + k, c] for one sequence xb [T, C], the CPU's order; inputs before t = 0
// from state sb [K-1, C] (null: zero).
template <class T>
__device__ inline float pre_activation(const T* xb, const float* sb, const float* w, const float* bias, int t, int c,
                                       int C, int K) {
  float pre = bias[c];
  for (int k = 0; k < K; k++) {
    int s = t - (K - 1) + k;
    if (s < 0 && !sb) continue;
    float in = s >= 0 ? (float)xb[(size_t)s * C + c] : sb[(size_t)(K - 1 + s) * C + c];
    pre = fmaf(w[(size_t)c * K + k], in, pre);
  }
  return pre;
}

template <class T>
__global__ void conv_forward_kernel(T* y, const T* x, const float* w, const float* bias, int T_, int C, int K,
                                    const float* state) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  int b = blockIdx.y;
  if (i >= (size_t)T_ * C) return;
  int t = (int)(i / C), c = (int)(i % C);
  const T* xb = x + (size_t)b * T_ * C;
  const float* sb = state ? state + (size_t)b * (K - 1) * C : nullptr;
  y[(size_t)b * T_ * C + i] = (T)silu(pre_activation(xb, sb, w, bias, t, c, C, K));
}

// state [B, K-1, C] = the last K-1 inputs of each sequence (of x, or of the old state shifted down by T where
// T < K-1). One thread owns a channel of a sequence and moves it in batches of kCausalConvMaxWidth entries,
// ascending, each batch read whole before it is written: a batch reads entries at least T above those it
// writes, which no earlier batch wrote.
template <class T>
__global__ void conv_state_kernel(float* __restrict__ state, const T* __restrict__ x, int B, int T_, int C, int K) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)B * C) return;
  int b = (int)(i / C), c = (int)(i % C);
  float* sb = state + (size_t)b * (K - 1) * C;
  for (int j0 = 0; j0 < K - 1; j0 += kCausalConvMaxWidth) {
    float batch[kCausalConvMaxWidth];
#pragma unroll
    for (int u = 0; u < kCausalConvMaxWidth; u++) {
      int j = j0 + u, s = T_ - (K - 1) + j;
      if (j < K - 1) batch[u] = s >= 0 ? (float)x[((size_t)b * T_ + s) * C + c] : sb[(size_t)(j + T_) * C + c];
    }
#pragma unroll
    for (int u = 0; u < kCausalConvMaxWidth; u++)
      if (j0 + u < K - 1) sb[(size_t)(j0 + u) * C + c] = batch[u];
  }
}

// dx[p, c] = sum over the K outputs t = p .. p+K-1 that read input p of g[t, c] w[c, K-1 - (t - p)], t in
// increasing order as the CPU adds them; g = dy silu'(pre).
template <class T>
__global__ void conv_backward_dx_kernel(T* dx, const T* dy, const T* x, const float* w, const float* bias, int T_,
                                        int C, int K) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  int b = blockIdx.y;
  if (i >= (size_t)T_ * C) return;
  int p = (int)(i / C), c = (int)(i % C);
  const T* xb = x + (size_t)b * T_ * C;
  const T* dyb = dy + (size_t)b * T_ * C;
  float acc = 0.f;
  for (int k = K - 1; k >= 0; k--) {
    int t = p + (K - 1) - k;
    if (t >= T_) break;
    float g = (float)dyb[(size_t)t * C + c] * silu_grad(pre_activation(xb, (const float*)nullptr, w, bias, t, c, C, K));
    acc += g * w[(size_t)c * K + k];
  }
  dx[(size_t)b * T_ * C + i] = (T)acc;
}

// Per-block partial sums of dw [C, K] and dbias [C] at part + blockIdx.y * (K+1) C: a block owns 32 channels
// and a fixed set of rows (kRowLanes row lanes striding by kRowLanes * gridDim.y), each lane summing its rows in
// order, then the lanes in lane order.
constexpr int kRowLanes = 8;
constexpr int kMaxBlocks = 512;

int dw_blocks(size_t rows) {
  size_t g = (rows + 127) / 128;
  return g < 1 ? 1 : g > (size_t)kMaxBlocks ? kMaxBlocks : (int)g;
}

template <class T>
__global__ void __launch_bounds__(32 * kRowLanes)
    conv_backward_dw_kernel(float* part, const T* dy, const T* x, const float* w, const float* bias, int rows, int T_,
                            int C, int K) {
  __shared__ float sums[kRowLanes][kCausalConvMaxWidth + 1][32];
  int lane = threadIdx.x % 32, r = threadIdx.x / 32, c = blockIdx.x * 32 + lane;
  float acc[kCausalConvMaxWidth + 1] = {};  // dw taps 0..K-1, then dbias at kCausalConvMaxWidth
  if (c < C) {
    for (int i = blockIdx.y * kRowLanes + r; i < rows; i += gridDim.y * kRowLanes) {
      int t = i % T_;
      const T* xb = x + (size_t)(i - t) * C;
      float g = (float)dy[(size_t)i * C + c] * silu_grad(pre_activation(xb, (const float*)nullptr, w, bias, t, c, C, K));
      acc[kCausalConvMaxWidth] += g;
#pragma unroll
      for (int k = 0; k < kCausalConvMaxWidth; k++) {
        int s = t - (K - 1) + k;
        if (k < K && s >= 0) acc[k] += g * (float)xb[(size_t)s * C + c];
      }
    }
  }
#pragma unroll
  for (int k = 0; k <= kCausalConvMaxWidth; k++) sums[r][k][lane] = acc[k];
  __syncthreads();
  if (r == 0 && c < C) {
    float* out = part + (size_t)blockIdx.y * (K + 1) * C;
    for (int k = 0; k < K; k++) {
      float s = 0.f;
      for (int j = 0; j < kRowLanes; j++) s += sums[j][k][lane];
      out[(size_t)c * K + k] = s;
    }
    float s = 0.f;
    for (int j = 0; j < kRowLanes; j++) s += sums[j][kCausalConvMaxWidth][lane];
    out[(size_t)K * C + c] = s;
  }
}

// ---- Long widths ----

constexpr int kTileLanes = 32;                // channels a block owns: a lane each
constexpr int kTileWarps = 8;                 // 256 threads
constexpr int kRun = 16;                      // outputs (tile kernel) or taps (dw kernel) a thread accumulates
constexpr int kTileRows = kTileWarps * kRun;  // rows (tile kernel) or taps (dw kernel) a block owns: 128
constexpr int kChunk = 64;                    // taps (tile kernel) or rows of g (dw kernel) staged at a time
constexpr int kSegment = 512;                 // rows of one sequence a dw block sums into its partial
// Rows the input stage holds: chunk + kTileRows covers every window (kRun - 1 past the chunk from the last
// warp's start) plus slide_fma's one-past refill.
constexpr int kStageRows = kChunk + kTileRows;

// acc[r] += a[i] x[i + r] for i = 0..n-1 in increasing i, r < kRun; a and x are shared-memory columns with
// row strides sa and sx, x holding n + kRun rows. The window x[i .. i + kRun) stays in registers as a ring
// (slot (i + r) % kRun, all indices compile-time within a block of kRun steps): each step loads one tap and
// one new input for kRun multiply-adds.
__device__ inline void slide_fma(float (&acc)[kRun], const float* a, int sa, const float* x, int sx, int n) {
  float win[kRun];
#pragma unroll
  for (int r = 0; r < kRun; r++) win[r] = x[r * sx];
  int i = 0;
  for (; i + kRun <= n; i += kRun) {
#pragma unroll
    for (int u = 0; u < kRun; u++) {
      float ai = a[(i + u) * sa];
#pragma unroll
      for (int r = 0; r < kRun; r++) acc[r] = fmaf(ai, win[(u + r) % kRun], acc[r]);
      win[u] = x[(i + u + kRun) * sx];  // slot u's input x[i + u] is spent; x[i + u + kRun] takes it
    }
  }
  for (; i < n; i++) {  // a chunk's ragged end (K not a multiple of kRun)
    float ai = a[i * sa];
#pragma unroll
    for (int r = 0; r < kRun; r++) acc[r] = fmaf(ai, x[(i + r) * sx], acc[r]);
  }
}

// taps[i][l] = w[c0 + l, k0 + i] for i < kc, zero past kc or C; consecutive threads read consecutive taps of
// a channel, and the padded rows keep the transposing stores free of bank conflicts.
__device__ inline void stage_taps(float (*taps)[kTileLanes + 1], const float* w, int c0, int C, int K, int k0, int kc) {
  for (int f = threadIdx.x; f < kTileLanes * kChunk; f += blockDim.x) {
    int cl = f / kChunk, i = f % kChunk;
    taps[i][cl] = i < kc && c0 + cl < C ? w[(size_t)(c0 + cl) * K + k0 + i] : 0.f;
  }
}

// What a tile kernel computes from its pre-activations p = bias + sum_k w[c, k] in[t - (K-1) + k, c]:
// kForward: y = silu(p), the inputs before t = 0 from the state (or zero);
// kGrad: g = dy silu'(p) into fp32 scratch, and each block's sum of g per channel (dbias partials);
// kDx: dx, the convolution of g run backwards in time with no bias: dx[p] = sum_j w[K-1-j] g[p + j] is, with
//      time reversed (t' = T-1-t), the causal convolution of the reversed g by the same taps.
enum class TileMode { kForward, kGrad, kDx };

template <class A, TileMode M>
struct TileArgs {
  using In = std::conditional_t<M == TileMode::kDx, float, A>;     // x, or g for kDx
  using Out = std::conditional_t<M == TileMode::kGrad, float, A>;  // y, g or dx
  Out* out;
  const In* in;
  const float* w;
  const float* bias;   // null for kDx
  const float* state;  // kForward only; may be null
  const A* dy;         // kGrad only
  float* bias_part;    // kGrad only: [B * tiles, C]
  int T, C, K;
};

// Block (sequence b and row tile, in blockIdx.x; channel tile, blockIdx.y). Warp w owns rows
// t0 + w kRun .. + kRun of the tile; lane l channel c0 + l. Taps go through in chunks of kChunk: the chunk's
// taps (transposed to [tap][channel], padded against bank conflicts) and the inputs its rows read, stage row j
// being time t0 - (K-1) + k0 + j.
template <class A, TileMode M>
__global__ void __launch_bounds__(kTileLanes* kTileWarps) conv_tile_kernel(TileArgs<A, M> p) {
  __shared__ float taps[kChunk][kTileLanes + 1];
  __shared__ float xs[kStageRows][kTileLanes];
  const int T_ = p.T, C = p.C, K = p.K;
  int lane = threadIdx.x % kTileLanes, warp = threadIdx.x / kTileLanes;
  int tiles = (T_ + kTileRows - 1) / kTileRows, b = blockIdx.x / tiles, t0 = (blockIdx.x % tiles) * kTileRows;
  int c0 = blockIdx.y * kTileLanes, c = c0 + lane;
  const auto* in = p.in + (size_t)b * T_ * C;
  const float* sb = p.state ? p.state + (size_t)b * (K - 1) * C : nullptr;
  float acc[kRun];
  float start = M != TileMode::kDx && c < C ? p.bias[c] : 0.f;
#pragma unroll
  for (int r = 0; r < kRun; r++) acc[r] = start;
  for (int k0 = 0; k0 < K; k0 += kChunk) {
    int kc = min(kChunk, K - k0), first = t0 - (K - 1) + k0;
    if (!sb && first + kStageRows <= 0) continue;  // every input before t = 0 and zero (block-uniform)
    __syncthreads();                               // the previous chunk is read
    stage_taps(taps, p.w, c0, C, K, k0, kc);
    for (int j = warp; j < kStageRows; j += kTileWarps) {
      int s = first + j;
      float v = 0.f;
      if (c < C && s < T_) {
        if constexpr (M == TileMode::kDx)
          v = s >= 0 ? (float)in[(size_t)(T_ - 1 - s) * C + c] : 0.f;
        else if (s >= 0)
          v = (float)in[(size_t)s * C + c];
        else if (sb)
          v = sb[(size_t)(K - 1 + s) * C + c];
      }
      xs[j][lane] = v;
    }
    __syncthreads();
    slide_fma(acc, &taps[0][lane], kTileLanes + 1, &xs[warp * kRun][lane], kTileLanes, kc);
  }
  float gsum = 0.f;
#pragma unroll
  for (int r = 0; r < kRun; r++) {
    int t = t0 + warp * kRun + r;
    if (t >= T_ || c >= C) continue;
    if constexpr (M == TileMode::kForward) {
      p.out[((size_t)b * T_ + t) * C + c] = (A)silu(acc[r]);
    } else if constexpr (M == TileMode::kGrad) {
      size_t o = ((size_t)b * T_ + t) * C + c;
      float g = (float)p.dy[o] * silu_grad(acc[r]);
      p.out[o] = g;
      gsum += g;
    } else {
      p.out[((size_t)b * T_ + T_ - 1 - t) * C + c] = (A)acc[r];
    }
  }
  if constexpr (M == TileMode::kGrad) {  // the warps' sums in warp order
    __syncthreads();
    xs[warp][lane] = gsum;
    __syncthreads();
    if (warp == 0 && c < C) {
      float s = 0.f;
      for (int j = 0; j < kTileWarps; j++) s += xs[j][lane];
      p.bias_part[(size_t)blockIdx.x * C + c] = s;
    }
  }
}

// The forward on a few rows (streaming steps) at long widths: block (channel tile, blockIdx.x; kTileWarps
// sequences, a warp each, blockIdx.y). The warps share each chunk of taps staged in shared memory (read from
// global memory once per block rather than once per sequence); a thread sums its rows' taps in order.
template <class T>
__global__ void __launch_bounds__(kTileLanes* kTileWarps)
    conv_rows_kernel(T* y, const T* x, const float* w, const float* bias, int B, int T_, int C, int K,
                     const float* state) {
  __shared__ float taps[kChunk][kTileLanes + 1];
  int lane = threadIdx.x % kTileLanes, warp = threadIdx.x / kTileLanes;
  int c0 = blockIdx.x * kTileLanes, c = c0 + lane, b = blockIdx.y * kTileWarps + warp;
  bool mine = b < B && c < C;
  const T* xb = x + (size_t)min(b, B - 1) * T_ * C;
  const float* sb = state ? state + (size_t)min(b, B - 1) * (K - 1) * C : nullptr;
  for (int t = 0; t < T_; t++) {
    float acc = mine ? bias[c] : 0.f;
    for (int k0 = 0; k0 < K; k0 += kChunk) {
      int kc = min(kChunk, K - k0);
      __syncthreads();
      stage_taps(taps, w, c0, C, K, k0, kc);
      __syncthreads();
      if (!mine) continue;
#pragma unroll 8
      for (int i = 0; i < kc; i++) {
        int s = t - (K - 1) + k0 + i;
        float v = s >= 0 ? (float)xb[(size_t)s * C + c] : sb ? sb[(size_t)(K - 1 + s) * C + c] : 0.f;
        acc = fmaf(taps[i][lane], v, acc);
      }
    }
    if (mine) y[((size_t)b * T_ + t) * C + c] = (T)silu(acc);
  }
}

// Partial dw [C, K] of one block at part + blockIdx.x C K: block (sequence b and segment of kSegment rows, in
// blockIdx.x; channel tile, blockIdx.y; tap tile k0 = blockIdx.z kTileRows). Thread (warp w, lane l) sums
// g[t, c] x[t - (K-1) + k, c] over the segment's rows in order for its kRun taps k0 + w kRun + r. Rows of g go
// through in chunks of kChunk, stage row j of x being time t0 - (K-1) + k0 + j.
template <class A>
__global__ void __launch_bounds__(kTileLanes* kTileWarps)
    conv_tile_dw_kernel(float* part, const float* g, const A* x, int T_, int C, int K) {
  __shared__ float gs[kChunk][kTileLanes + 1];
  __shared__ float xs[kStageRows][kTileLanes];
  int lane = threadIdx.x % kTileLanes, warp = threadIdx.x / kTileLanes;
  int segments = (T_ + kSegment - 1) / kSegment, b = blockIdx.x / segments;
  int t_begin = (blockIdx.x % segments) * kSegment, t_end = min(T_, t_begin + kSegment);
  int c0 = blockIdx.y * kTileLanes, c = c0 + lane, k0 = blockIdx.z * kTileRows;
  const float* gb = g + (size_t)b * T_ * C;
  const A* xb = x + (size_t)b * T_ * C;
  float acc[kRun] = {};
  for (int t0 = t_begin; t0 < t_end; t0 += kChunk) {
    int first = t0 - (K - 1) + k0;
    if (first + kStageRows <= 0) continue;  // every input before t = 0 (block-uniform)
    __syncthreads();
    for (int i = warp; i < kChunk; i += kTileWarps)
      gs[i][lane] = c < C && t0 + i < t_end ? gb[(size_t)(t0 + i) * C + c] : 0.f;
    for (int j = warp; j < kStageRows; j += kTileWarps) {
      int s = first + j;
      xs[j][lane] = c < C && s >= 0 && s < T_ ? (float)xb[(size_t)s * C + c] : 0.f;
    }
    __syncthreads();
    slide_fma(acc, &gs[0][lane], kTileLanes + 1, &xs[warp * kRun][lane], kTileLanes, kChunk);
  }
  // out through shared memory as [channel][tap], so the stores run along taps as dw's rows do
  __syncthreads();
  float(*out)[kTileRows + 1] = reinterpret_cast<float(*)[kTileRows + 1]>(&xs[0][0]);
  static_assert(kTileLanes * (kTileRows + 1) <= kStageRows * kTileLanes, "the output stage fits in xs");
#pragma unroll
  for (int r = 0; r < kRun; r++) out[lane][warp * kRun + r] = acc[r];
  __syncthreads();
  float* pb = part + (size_t)blockIdx.x * C * K;
  for (int f = threadIdx.x; f < kTileLanes * kTileRows; f += blockDim.x) {
    int cl = f / kTileRows, kl = f % kTileRows;
    if (c0 + cl < C && k0 + kl < K) pb[(size_t)(c0 + cl) * K + k0 + kl] = out[cl][kl];
  }
}

int row_tiles(int T_) { return (T_ + kTileRows - 1) / kTileRows; }
int dw_segments(int T_) { return (T_ + kSegment - 1) / kSegment; }
dim3 tile_grid(int B, int T_, int C) {
  return dim3((unsigned)(B * row_tiles(T_)), (unsigned)((C + kTileLanes - 1) / kTileLanes));
}

// The forward at long widths on fewer rows than a quarter tile (streaming steps) runs conv_rows_kernel.
constexpr int kMinTileRows = kTileRows / 4;

void check_width(int K) {
  if (K < 1) throw Error("causal conv width must be at least 1, got " + std::to_string(K));
}

}  // namespace

template <class A>
void causal_conv_forward_cuda(A* y, const A* x, const float* w, const float* bias, int B, int T_, int C, int K,
                              float* state, cudaStream_t stream) {
  check_width(K);
  if (B == 0 || T_ == 0 || C == 0) return;
  if (K > kCausalConvMaxWidth && T_ >= kMinTileRows) {
    TileArgs<A, TileMode::kForward> p{y, x, w, bias, state, nullptr, nullptr, T_, C, K};
    conv_tile_kernel<<<tile_grid(B, T_, C), kTileLanes * kTileWarps, 0, stream>>>(p);
  } else if (K > kCausalConvMaxWidth) {
    dim3 grid((unsigned)((C + kTileLanes - 1) / kTileLanes), (unsigned)((B + kTileWarps - 1) / kTileWarps));
    conv_rows_kernel<<<grid, kTileLanes * kTileWarps, 0, stream>>>(y, x, w, bias, B, T_, C, K, state);
  } else {
    conv_forward_kernel<<<dim3(blocks_for((size_t)T_ * C), B), kThreads, 0, stream>>>(y, x, w, bias, T_, C, K, state);
  }
  BYTELM_CUDA_CHECK(cudaGetLastError());
  if (state && K > 1) {  // after the forward has read the old state
    conv_state_kernel<<<blocks_for((size_t)B * C), kThreads, 0, stream>>>(state, x, B, T_, C, K);
    BYTELM_CUDA_CHECK(cudaGetLastError());
  }
}

// Short: dw_blocks rows of [dw | dbias]. Long: g [B, T, C], then the dw partials [B segments, C, K], then the
// dbias partials [B row tiles, C].
size_t causal_conv_backward_cuda_partials(int B, int T_, int C, int K) {
  if (K <= kCausalConvMaxWidth) return (size_t)dw_blocks((size_t)B * T_) * (K + 1) * C;
  return (size_t)B * T_ * C + (size_t)B * dw_segments(T_) * C * K + (size_t)B * row_tiles(T_) * C;
}

template <class A>
void causal_conv_backward_cuda(A* dx, float* dw, float* dbias, const A* dy, const A* x, const float* w,
                               const float* bias, int B, int T_, int C, int K, float* partials, cudaStream_t stream) {
  check_width(K);
  if (B == 0 || T_ == 0 || C == 0) return;
  if (K > kCausalConvMaxWidth) {
    float* g = partials;
    float* dw_part = g + (size_t)B * T_ * C;
    float* bias_part = dw_part + (size_t)B * dw_segments(T_) * C * K;
    unsigned threads = kTileLanes * kTileWarps;
    TileArgs<A, TileMode::kGrad> pg{g, x, w, bias, nullptr, dy, bias_part, T_, C, K};
    conv_tile_kernel<<<tile_grid(B, T_, C), threads, 0, stream>>>(pg);
    BYTELM_CUDA_CHECK(cudaGetLastError());
    TileArgs<A, TileMode::kDx> pd{dx, g, w, nullptr, nullptr, nullptr, nullptr, T_, C, K};
    conv_tile_kernel<<<tile_grid(B, T_, C), threads, 0, stream>>>(pd);
    BYTELM_CUDA_CHECK(cudaGetLastError());
    dim3 dw_grid((unsigned)(B * dw_segments(T_)), (unsigned)((C + kTileLanes - 1) / kTileLanes),
                 (unsigned)((K + kTileRows - 1) / kTileRows));
    conv_tile_dw_kernel<<<dw_grid, threads, 0, stream>>>(dw_part, g, x, T_, C, K);
    BYTELM_CUDA_CHECK(cudaGetLastError());
    add_partial_sums(dw, dw_part, B * dw_segments(T_), C * K, C * K, stream);
    add_partial_sums(dbias, bias_part, B * row_tiles(T_), C, C, stream);
    return;
  }
  conv_backward_dx_kernel<<<dim3(blocks_for((size_t)T_ * C), B), kThreads, 0, stream>>>(dx, dy, x, w, bias, T_, C, K);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  int rows = B * T_, G = dw_blocks(rows);
  conv_backward_dw_kernel<<<dim3((C + 31) / 32, G), 32 * kRowLanes, 0, stream>>>(partials, dy, x, w, bias, rows, T_, C,
                                                                                  K);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  add_partial_sums<float>({{dw, C * K, 0}, {dbias, C, C * K}}, partials, G, (K + 1) * C, stream);
}

#define BYTELM_INSTANTIATE(A)                                                                                     \
  template void causal_conv_forward_cuda<A>(A*, const A*, const float*, const float*, int, int, int, int, float*, \
                                            cudaStream_t);                                                        \
  template void causal_conv_backward_cuda<A>(A*, float*, float*, const A*, const A*, const float*, const float*,  \
                                             int, int, int, int, float*, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
