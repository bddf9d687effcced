// Chunked scan for h_t = a h_{t-1} + (1 - a) u_t (and its reverse for the backward).
//
// A block owns one sequence b and 32 channels (lane = channel, so every warp
// load is one 128-byte row segment). Its kWarps warps cover kWarps consecutive
// chunks of kChunk steps (a span of kSpan steps); the block walks the spans in
// time order, carrying the state S between them in registers:
//   1. each warp loads its chunk into registers and scans it from zero state,
//      giving the chunk's end value e_w = h_end - a^L h_start;
//   2. every warp folds the ends in chunk order, S_{w+1} = a^L S_w + e_w, which
//      gives its own carry-in S_w and the span's end state for the next span;
//   3. each warp reruns its chunk from its carry-in (the exact sequential
//      recurrence, equal to local + a^(t+1) carry) and stores h.
// u is read once and h written once; the only power is a^L, computed in double
// from the float a the recurrence uses (no cumulative sums, nothing overflows).
// The block reads each span from a shared-memory stage that cp.async filled while
// it scanned the span before (stage_rows), so its loads stay in flight the whole
// time instead of once a span (registers for that cost occupancy, see NOTES).
// The backward is the same with time reversed, plus da = sum g_t (h_{t-1} - u_t),
// summed per thread, then over the warps in order, then over b in order.
#include <algorithm>

#include "core/bf16.h"
#include "layers/cuda_common.cuh"
#include "layers/diag_ssm_cuda.h"
#include "layers/linear_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

// Measured on an H100 before the staging (B=16, T=2048, d=512; forward / backward): 8 x 16 0.058 / 0.132 ms,
// 16 x 16 0.055 / 0.190, 32 x 8 0.059 / 0.307 (its backward holds 210 registers).
constexpr int kChunk = 8;               // steps per warp, held in registers
constexpr int kWarps = 16;              // chunks in flight per block
constexpr int kSpan = kChunk * kWarps;  // steps per block iteration
constexpr int kBlock = kWarps * 32;     // threads per block
// Three blocks an SM, as before the staging: the kernels then fit in 40 registers (52 and 59 without the bound,
// two blocks an SM); the backward's two stages of three tiles take 48 KB of shared memory a block in bf16.
constexpr int kBlocksPerSm = 3;
static_assert(kBlock <= 1024);

// The CPU's decay exp(-softplus(lam)) with the same float stages, each correctly
// rounded (computed in double), so it equals the host's a wherever the host libm
// rounds correctly. That matters for a near 1: one ulp of a moves the output by
// about ulp/(1-a). (glibc 2.39 is an ulp off for ~4% of lam, all far from a = 1.)
__device__ inline float decay_of(float lam) {
  float sp = lam > 20.f ? lam : (float)log1p((double)(float)exp((double)lam));
  return (float)exp(-(double)sp);
}

// Rows [r0, r0 + kSpan) of the 32 channels from c0 of one sequence ([T_, d] at seq) into tile [kSpan][32], zero
// outside rows [0, T_) and channels [0, d). vec (d a multiple of the pack, seq 16-byte aligned): by cp.async, so
// the next span's rows arrive while the block scans this one (a block otherwise waits out a load latency every
// span); else plain loads, visible like the copies after the barrier.
template <class T>
__device__ inline void stage_rows(T* tile, const T* seq, int r0, int T_, int c0, int d, bool vec) {
  constexpr int n = Pack<T>::n, kRowChunks = 32 / n;
  if (vec) {
    for (int i = threadIdx.x; i < kSpan * kRowChunks; i += kBlock) {
      int r = i / kRowChunks, c = c0 + (i % kRowChunks) * n, t = r0 + r;
      bool valid = t >= 0 && t < T_ && c < d;  // a chunk is all in or all out: d and c0 are multiples of n
      cp_async16(tile + i * n, valid ? seq + (size_t)t * d + c : seq, valid);
    }
  } else {
    for (int i = threadIdx.x; i < kSpan * 32; i += kBlock) {
      int t = r0 + i / 32, c = c0 + i % 32;
      tile[i] = t >= 0 && t < T_ && c < d ? seq[(size_t)t * d + c] : (T)0.f;
    }
  }
}

// Stages `arrays` tiles of a span (the `from` sequences at row offsets `shift`) into one stage of the ring, and
// commits them as one copy group.
template <class T, int kArrays>
__device__ inline void stage_span(T* stage, const T* const (&from)[kArrays], const int (&shift)[kArrays], int r0,
                                  int T_, int c0, int d, bool vec) {
#pragma unroll
  for (int a = 0; a < kArrays; a++) stage_rows(stage + a * kSpan * 32, from[a], r0 + shift[a], T_, c0, d, vec);
  cp_async_commit();
}

// Two stages of kArrays tiles: span i scans in stage i % 2 while span i + 1 arrives in the other.
template <class T, int kArrays>
constexpr size_t scan_smem_bytes() {
  return 2 * (size_t)kArrays * kSpan * 32 * sizeof(T);
}

// Makes stage i's copies visible: waits for all but the group just issued for span i + 1 (when there is one).
__device__ inline void wait_stage(bool next_issued) {
  if (next_issued)
    cp_async_wait<1>();
  else
    cp_async_wait<0>();
  __syncthreads();
}

template <class T>
__global__ void __launch_bounds__(kBlock, kBlocksPerSm)
    diag_scan_forward_kernel(T* h, const T* u, const float* lam, int B, int T_, int d, const float* h0, float* h_last,
                             bool vec) {
  __shared__ __align__(16) T tiles[2][kSpan * 32];  // u, two stages
  __shared__ float ends[kWarps][32];
  int lane = threadIdx.x % 32, w = threadIdx.x / 32, c0 = blockIdx.x * 32, c = c0 + lane;
  bool active = c < d;
  float a = active ? decay_of(lam[c]) : 0.f, one_minus_a = 1.f - a;
  float aL = (float)pow((double)a, (double)kChunk);
  int spans = (T_ + kSpan - 1) / kSpan;
  for (int b = blockIdx.y; b < B; b += gridDim.y) {        // more sequences than a grid's rows loop
    float S = active && h0 ? h0[(size_t)b * d + c] : 0.f;  // state before the span
    const T* from[1] = {u + (size_t)b * T_ * d};
    const int shift[1] = {0};
    T* hb = h + (size_t)b * T_ * d + c;
    stage_span(tiles[0], from, shift, 0, T_, c0, d, vec);
    for (int span = 0; span < spans; span++) {
      bool next = span + 1 < spans;
      if (next) stage_span(tiles[(span + 1) % 2], from, shift, (span + 1) * kSpan, T_, c0, d, vec);
      wait_stage(next);
      int t0 = span * kSpan + w * kChunk;  // this warp's chunk
      const T* xs = tiles[span % 2] + w * kChunk * 32 + lane;
      float x[kChunk];
#pragma unroll
      for (int k = 0; k < kChunk; k++) x[k] = (float)xs[k * 32];  // zero past T_ and d
      float s = 0.f;
#pragma unroll
      for (int k = 0; k < kChunk; k++) s = a * s + one_minus_a * x[k];
      ends[w][lane] = s;
      __syncthreads();  // also: every warp has read its x from this stage, which span + 2 overwrites
#pragma unroll
      for (int j = 0; j < kWarps; j++) {
        if (j == w) s = S;  // this warp's carry-in
        S = aL * S + ends[j][lane];
      }
      __syncthreads();  // ends[] is rewritten next span
#pragma unroll
      for (int k = 0; k < kChunk; k++) {
        s = a * s + one_minus_a * x[k];
        if (active && t0 + k < T_) hb[(size_t)(t0 + k) * d] = (T)s;
        if (active && h_last && t0 + k == T_ - 1) h_last[(size_t)b * d + c] = s;  // after h0 was read (S, above)
      }
    }
  }
}

// Spans run from the last to the first, chunks fold from the right:
// g at a chunk's start = local + a^L (g at the next chunk's start).
// Dynamic shared memory: scan_smem_bytes<T, 3>(), two stages of dh, u and h one row back (h_{t-1}).
template <class T>
__global__ void __launch_bounds__(kBlock, kBlocksPerSm)
    diag_scan_backward_kernel(T* dh_to_du, float* da_part, const T* u, const T* h, const float* lam, int B, int T_,
                              int d, bool vec) {
  extern __shared__ __align__(16) unsigned char scan_smem[];
  T* tiles = reinterpret_cast<T*>(scan_smem);
  constexpr size_t kTile = kSpan * 32, kStage = 3 * kTile;
  __shared__ float ends[kWarps][32];
  int lane = threadIdx.x % 32, w = threadIdx.x / 32, c0 = blockIdx.x * 32, c = c0 + lane;
  bool active = c < d;
  float a = active ? decay_of(lam[c]) : 0.f, one_minus_a = 1.f - a;
  float aL = (float)pow((double)a, (double)kChunk);
  int spans = (T_ + kSpan - 1) / kSpan;
  for (int b = blockIdx.y; b < B; b += gridDim.y) {
    float G = 0.f, da = 0.f;  // G: g at the start of the span after this one
    size_t base = (size_t)b * T_ * d;
    // A span's du overwrites its own dh rows only after they were staged; the span staged meanwhile is earlier.
    const T* from[3] = {dh_to_du + base, u + base, h + base};
    const int shift[3] = {0, 0, -1};  // h_{t-1}: row -1 reads zero
    stage_span(tiles + ((spans - 1) % 2) * kStage, from, shift, (spans - 1) * kSpan, T_, c0, d, vec);
    for (int span = spans - 1; span >= 0; span--) {
      bool next = span > 0;
      if (next) stage_span(tiles + ((span - 1) % 2) * kStage, from, shift, (span - 1) * kSpan, T_, c0, d, vec);
      wait_stage(next);
      int t0 = span * kSpan + w * kChunk;
      const T* st = tiles + (span % 2) * kStage + w * kChunk * 32 + lane;  // dh, then u and h_{t-1} a tile on
      float x[kChunk];
#pragma unroll
      for (int k = 0; k < kChunk; k++) x[k] = (float)st[k * 32];
      float g = 0.f;
#pragma unroll
      for (int k = kChunk - 1; k >= 0; k--) g = x[k] + a * g;
      ends[w][lane] = g;
      __syncthreads();
#pragma unroll
      for (int j = kWarps - 1; j >= 0; j--) {
        if (j == w) g = G;  // this warp's carry-in from the right
        G = aL * G + ends[j][lane];
      }
      __syncthreads();
#pragma unroll
      for (int k = kChunk - 1; k >= 0; k--) {
        int t = t0 + k;
        g = x[k] + a * g;
        if (active && t < T_) {
          da += g * ((float)st[2 * kTile + k * 32] - (float)st[kTile + k * 32]);  // g (h_{t-1} - u_t)
          dh_to_du[base + (size_t)t * d + c] = (T)(one_minus_a * g);
        }
      }
      __syncthreads();  // every warp has read u and h_{t-1} from this stage, which span - 2 overwrites
    }
    ends[w][lane] = da;
    __syncthreads();
    if (w == 0 && active) {
      float s = 0.f;
      for (int j = 0; j < kWarps; j++) s += ends[j][lane];
      da_part[(size_t)b * d + c] = s;
    }
    __syncthreads();  // ends[] is rewritten by the next sequence
  }
}

// Many short sequences (T_ <= kShortScan: patching local's B T / P patches of P bytes, a stream's single step):
// a thread a (group of sequences, channel) steps through its sequences one after the other, each in time order,
// the exact recurrence with no chunks or carries. Consecutive threads take consecutive channels, so each step's
// loads are whole rows. The groups are fixed by B and d alone, as is the order their dlam shares are summed in.
constexpr int kShortScan = 64;
constexpr int kShortThreads = 1 << 18;  // about what an H100 keeps resident

struct ShortGroups {
  int groups, per;  // groups of `per` consecutive sequences (the last may be short)
};
ShortGroups short_groups(int B, int d) {
  int g = std::max(1, std::min(B, kShortThreads / std::max(d, 1)));
  int per = (B + g - 1) / g;
  return {(B + per - 1) / per, per};
}

template <class T>
__global__ void diag_short_scan_forward_kernel(T* h, const T* u, const float* lam, int B, int T_, int d,
                                               const float* h0, float* h_last, ShortGroups sg) {
  size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)sg.groups * d) return;
  int c = (int)(idx % d), g = (int)(idx / d);
  float a = decay_of(lam[c]), one_minus_a = 1.f - a;
  for (int b = g * sg.per; b < min(B, (g + 1) * sg.per); b++) {
    size_t state = (size_t)b * d + c, base = (size_t)b * T_ * d + c;
    float s = h0 ? h0[state] : 0.f;
    for (int t = 0; t < T_; t++) {
      s = a * s + one_minus_a * (float)u[base + (size_t)t * d];
      h[base + (size_t)t * d] = (T)s;
    }
    if (h_last) h_last[state] = s;
  }
}

// dlam_part[g, c] = this thread's share of dlam: its sequences' da, in order, times da/dlam.
template <class T>
__global__ void diag_short_scan_backward_kernel(T* dh_to_du, float* dlam_part, const T* u, const T* h, const float* lam,
                                                int B, int T_, int d, ShortGroups sg) {
  size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)sg.groups * d) return;
  int c = (int)(idx % d), g = (int)(idx / d);
  float l = lam[c], a = decay_of(l), one_minus_a = 1.f - a, da = 0.f;
  for (int b = g * sg.per; b < min(B, (g + 1) * sg.per); b++) {
    size_t base = (size_t)b * T_ * d + c;
    float gt = 0.f;
    for (int t = T_ - 1; t >= 0; t--) {
      size_t i = base + (size_t)t * d;
      gt = (float)dh_to_du[i] + a * gt;
      float h_prev = t > 0 ? (float)h[i - d] : 0.f;
      da += gt * (h_prev - (float)u[i]);
      dh_to_du[i] = (T)(one_minus_a * gt);
    }
  }
  float sig = 1.f / (1.f + (float)exp(-(double)l));
  dlam_part[idx] = da * (-a * sig);
}

// dlam[c] += (sum over b of da[b, c], in b order) * da/dlam, da/dlam = -a sigmoid(lam).
__global__ void diag_scan_dlam_kernel(float* dlam, const float* da_part, const float* lam, int B, int d) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= d) return;
  float s = 0.f;
#pragma unroll 8
  for (int b = 0; b < B; b++) s += da_part[(size_t)b * d + c];
  float l = lam[c], sig = 1.f / (1.f + (float)exp(-(double)l));
  dlam[c] += s * (-decay_of(l) * sig);
}

}  // namespace

constexpr int kMaxGridRows = 65535;  // the general kernels' grid y; their blocks loop over the sequences beyond it

template <class A>
void diag_scan_forward_cuda(A* h, const A* u, const float* lam, int B, int T_, int d, const float* h0, float* h_last,
                            cudaStream_t stream) {
  if (B == 0 || T_ == 0 || d == 0) return;
  if (T_ <= kShortScan) {
    ShortGroups sg = short_groups(B, d);
    diag_short_scan_forward_kernel<<<blocks_for((size_t)sg.groups * d), kThreads, 0, stream>>>(h, u, lam, B, T_, d, h0,
                                                                                               h_last, sg);
  } else {
    bool vec = packable(u, d);
    diag_scan_forward_kernel<<<dim3((d + 31) / 32, std::min(B, kMaxGridRows)), kBlock, 0, stream>>>(h, u, lam, B, T_, d,
                                                                                                    h0, h_last, vec);
  }
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

size_t diag_scan_backward_cuda_partials(int B, int T_, int d) {
  return (size_t)(T_ <= kShortScan ? short_groups(B, d).groups : B) * d;
}

template <class A>
void diag_scan_backward_cuda(A* dh_to_du, float* dlam, const A* u, const A* h, const float* lam, int B, int T_, int d,
                             float* partials, cudaStream_t stream) {
  if (B == 0 || T_ == 0 || d == 0) return;
  if (T_ <= kShortScan) {
    ShortGroups sg = short_groups(B, d);
    diag_short_scan_backward_kernel<<<blocks_for((size_t)sg.groups * d), kThreads, 0, stream>>>(dh_to_du, partials, u,
                                                                                                h, lam, B, T_, d, sg);
    BYTELM_CUDA_CHECK(cudaGetLastError());
    add_partial_sums(dlam, partials, sg.groups, d, d, stream);
    return;
  }
  constexpr size_t smem = scan_smem_bytes<A, 3>();
  static const bool allowed = (allow_smem(diag_scan_backward_kernel<A>, smem), true);
  (void)allowed;
  bool vec = packable(dh_to_du, d) && packable(u, d) && packable(h, d);
  diag_scan_backward_kernel<<<dim3((d + 31) / 32, std::min(B, kMaxGridRows)), kBlock, smem, stream>>>(
      dh_to_du, partials, u, h, lam, B, T_, d, vec);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  diag_scan_dlam_kernel<<<blocks_for(d), kThreads, 0, stream>>>(dlam, partials, lam, B, d);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

template <class A>
void diag_ssm_forward_cuda(A* y, A* u, A* h, const A* x, DiagSsmWeights<float, A> w, int B, int T_, int d,
                           const float* h0, float* h_last, Gemm gemm, cudaStream_t stream) {
  int N = B * T_;
  if (N == 0 || d == 0) return;
  linear_forward_cuda(u, x, w.W_in, N, d, d, gemm, stream);
  diag_scan_forward_cuda(h, u, w.lam, B, T_, d, h0, h_last, stream);
  linear_forward_cuda(y, h, w.W_out, N, d, d, gemm, stream);
}

template <class A>
void diag_ssm_backward_cuda(A* dx, DiagSsmGrads<float> g, const A* dy, const A* x, const A* u, const A* h,
                            DiagSsmWeights<float, A> w, int B, int T_, int d, A* scratch, float* partials, Gemm gemm,
                            cudaStream_t stream) {
  int N = B * T_;
  if (N == 0 || d == 0) return;
  A* dh = scratch;
  linear_backward_cuda(dh, g.W_out, dy, h, w.W_out, N, d, d, false, gemm, stream);
  diag_scan_backward_cuda(dh, g.lam, u, h, w.lam, B, T_, d, partials, stream);
  linear_backward_cuda(dx, g.W_in, dh, x, w.W_in, N, d, d, false, gemm, stream);
}

#define BYTELM_INSTANTIATE(A)                                                                                         \
  template void diag_scan_forward_cuda<A>(A*, const A*, const float*, int, int, int, const float*, float*,            \
                                          cudaStream_t);                                                              \
  template void diag_scan_backward_cuda<A>(A*, float*, const A*, const A*, const float*, int, int, int, float*,       \
                                           cudaStream_t);                                                             \
  template void diag_ssm_forward_cuda<A>(A*, A*, A*, const A*, DiagSsmWeights<float, A>, int, int, int, const float*, \
                                         float*, Gemm, cudaStream_t);                                                 \
  template void diag_ssm_backward_cuda<A>(A*, DiagSsmGrads<float>, const A*, const A*, const A*, const A*,            \
                                          DiagSsmWeights<float, A>, int, int, int, A*, float*, Gemm, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
