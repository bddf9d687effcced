// Chunked scans for soft patching (see patch_soft_cuda.h): the forward n_t = k_t n_{t-1} + e_t (and z_t with
// input 1), the backward gn_t = x_t + k_{t+1} gn_{t+1} (and gz_t), both with diag_ssm.cu's layout: a block owns
// one row b and 32 channels, its warps scan consecutive chunks from zero state, fold the chunk ends in order with
// the chunk's product of k to get each warp's carry, and rerun their chunk from it (the exact recurrence).
#include <algorithm>

#include "core/bf16.h"
#include "layers/cuda_common.cuh"
#include "layers/patch.h"
#include "layers/patch_soft_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

constexpr int kChunk = 8;               // bytes per warp, held in registers
constexpr int kWarps = 16;              // chunks in flight per block
constexpr int kSpan = kChunk * kWarps;  // bytes per block iteration
constexpr int kBlock = kWarps * 32;
constexpr int kMaxGridRows = 65535;      // grid y; blocks loop over the rows beyond it
constexpr int kRowWarps = kThreads / 32;  // the warp-a-row kernels
constexpr int kMaxScoreWarps = 1024;     // backward: rows of w/c partial sums, fixed by the byte count alone

// The window whose patch byte t forms (its last byte), or -1.
__device__ inline int window_of(int t, int P, int Np) {
  return (t + 1) % P == 0 && (t + 1) / P <= Np ? (t + 1) / P - 1 : -1;
}

// keep[i] = 1 - sigmoid(c + w . e_i) = 1 / (1 + exp(score)), a warp a byte.
template <class T>
__global__ void soft_keep_kernel(float* keep, const T* e, const float* w, const float* c, int N, int d) {
  int i = blockIdx.x * kRowWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (i >= N) return;
  const T* et = e + (size_t)i * d;
  float s = 0.f;
  for (int k = lane; k < d; k += 32) s += w[k] * (float)et[k];
  s = c[0] + warp_sum(s);
  if (lane == 0) keep[i] = 1.f / (1.f + expf(s));
}

// n, z and the patches p = n / z at window ends. The state's n is read and written by the same thread; its z,
// which every channel block reads, comes in as z_in (a copy), so no block can read a z another already wrote.
template <class T>
__global__ void __launch_bounds__(kBlock)
    soft_scan_forward_kernel(T* p, float* n, float* z, const T* e, const float* keep, int B, int T_, int P, int Np, int d,
                             float* state, const float* z_in) {
  __shared__ float ends[kWarps][32], z_ends[kWarps], prods[kWarps];
  int lane = threadIdx.x % 32, w = threadIdx.x / 32, c = blockIdx.x * 32 + lane;
  bool active = c < d, writes_z = blockIdx.x == 0 && lane == 0;
  for (int b = blockIdx.y; b < B; b += gridDim.y) {
    size_t row0 = (size_t)b * T_;
    float S = active && state ? state[(size_t)b * d + c] : 0.f, Z = state ? z_in[b] : 0.f;  // before the span
    for (int span0 = 0; span0 < T_; span0 += kSpan) {
      int t0 = span0 + w * kChunk;
      float x[kChunk], k[kChunk];  // past the end: k = 1, no input, so the state passes through unchanged
#pragma unroll
      for (int j = 0; j < kChunk; j++) {
        bool in = t0 + j < T_;
        x[j] = active && in ? (float)e[(row0 + t0 + j) * d + c] : 0.f;
        k[j] = in ? keep[row0 + t0 + j] : 1.f;
      }
      float s = 0.f, zs = 0.f, prod = 1.f;
#pragma unroll
      for (int j = 0; j < kChunk; j++) {
        s = k[j] * s + x[j];
        zs = k[j] * zs + (t0 + j < T_ ? 1.f : 0.f);
        prod *= k[j];
      }
      ends[w][lane] = s;
      if (lane == 0) z_ends[w] = zs, prods[w] = prod;
      __syncthreads();
      float zc = 0.f;
#pragma unroll
      for (int j = 0; j < kWarps; j++) {
        if (j == w) s = S, zc = Z;  // this warp's carry-in
        S = prods[j] * S + ends[j][lane];
        Z = prods[j] * Z + z_ends[j];
      }
      __syncthreads();  // the ends are rewritten next span
      zs = zc;
#pragma unroll
      for (int j = 0; j < kChunk; j++) {
        int t = t0 + j;
        if (t >= T_) continue;
        s = k[j] * s + x[j];
        zs = k[j] * zs + 1.f;
        size_t i = row0 + t;
        if (active) n[i * d + c] = s;
        if (writes_z) z[i] = zs;
        int jp = window_of(t, P, Np);
        if (active && jp >= 0) p[((size_t)b * Np + jp) * d + c] = (T)(s / zs);
        if (state && t == T_ - 1) {
          if (active) state[(size_t)b * d + c] = s;
          if (writes_z) state[(size_t)B * d + b] = zs;
        }
      }
    }
  }
}

// gdn[b, j] = dp[b, j] . n at window j's last byte: what the patch's z sends back, -gdn / z^2.
template <class T>
__global__ void soft_window_dot_kernel(float* gdn, const T* dp, const float* n, int windows, int T_, int P, int Np,
                                       int d) {
  int bj = blockIdx.x * kRowWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (bj >= windows) return;
  const T* g = dp + (size_t)bj * d;
  const float* nt = n + ((size_t)(bj / Np) * T_ + (size_t)(bj % Np + 1) * P - 1) * d;
  float s = 0.f;
  for (int k = lane; k < d; k += 32) s += (float)g[k] * nt[k];
  s = warp_sum(s);
  if (lane == 0) gdn[bj] = s;
}

// Time reversed: de_t += gn_t; gz[i] = gz_t (block 0); dk_part[blockIdx.x][i] = this block's channels' share of
// gn_t . n_{t-1}. k[j] is k at the next byte, the factor that carries gn back from it.
template <class T>
__global__ void __launch_bounds__(kBlock)
    soft_scan_backward_kernel(T* de, float* dk_part, float* gz_out, const T* dp, const float* n, const float* z,
                              const float* keep, const float* gdn, int B, int T_, int P, int Np, int d) {
  __shared__ float ends[kWarps][32], z_ends[kWarps], prods[kWarps];
  int lane = threadIdx.x % 32, w = threadIdx.x / 32, c = blockIdx.x * 32 + lane;
  bool active = c < d, writes_z = blockIdx.x == 0 && lane == 0;
  size_t N = (size_t)B * T_;
  int spans = (T_ + kSpan - 1) / kSpan;
  for (int b = blockIdx.y; b < B; b += gridDim.y) {
    size_t row0 = (size_t)b * T_;
    float G = 0.f, GZ = 0.f;  // gn and gz at the start of the span after this one
    for (int span = spans - 1; span >= 0; span--) {
      int t0 = span * kSpan + w * kChunk;
      float x[kChunk], xz[kChunk], k[kChunk];
#pragma unroll
      for (int j = 0; j < kChunk; j++) {
        int t = t0 + j, jp = t < T_ ? window_of(t, P, Np) : -1;
        size_t i = row0 + t;
        float zt = jp >= 0 ? z[i] : 1.f;
        x[j] = active && jp >= 0 ? (float)dp[((size_t)b * Np + jp) * d + c] / zt : 0.f;
        xz[j] = jp >= 0 ? -gdn[(size_t)b * Np + jp] / (zt * zt) : 0.f;
        k[j] = t + 1 < T_ ? keep[i + 1] : 0.f;
      }
      float g = 0.f, gz = 0.f, prod = 1.f;
#pragma unroll
      for (int j = kChunk - 1; j >= 0; j--) {
        g = x[j] + k[j] * g;
        gz = xz[j] + k[j] * gz;
        prod *= k[j];
      }
      ends[w][lane] = g;
      if (lane == 0) z_ends[w] = gz, prods[w] = prod;
      __syncthreads();
      float gzc = 0.f;
#pragma unroll
      for (int j = kWarps - 1; j >= 0; j--) {
        if (j == w) g = G, gzc = GZ;  // this warp's carry-in from the right
        G = prods[j] * G + ends[j][lane];
        GZ = prods[j] * GZ + z_ends[j];
      }
      __syncthreads();
      gz = gzc;
#pragma unroll
      for (int j = kChunk - 1; j >= 0; j--) {
        int t = t0 + j;
        g = x[j] + k[j] * g;
        gz = xz[j] + k[j] * gz;
        if (t >= T_) continue;  // the same for the whole warp
        size_t i = row0 + t;
        if (active) de[i * d + c] = (T)((float)de[i * d + c] + g);
        float part = warp_sum(active && t > 0 ? g * n[(i - 1) * d + c] : 0.f);
        if (lane == 0) dk_part[(size_t)blockIdx.x * N + i] = part;
        if (writes_z) gz_out[i] = gz;
      }
    }
  }
}

// Warp k takes bytes [k per, (k + 1) per): dk_t = gz_t z_{t-1} + gn_t . n_{t-1} (the channel blocks' shares in
// order), through the sigmoid dscore = -dk k (1 - k); de_t += dscore w, and its w and c partial sums (row k of
// partials, d + 1 wide) in byte order.
template <class T>
__global__ void soft_score_backward_kernel(T* de, float* partials, const float* dk_part, const float* gz,
                                           const float* z, const float* keep, const T* e, const float* w, int N,
                                           int T_, int tiles, int warps, int per, int d) {
  int k = blockIdx.x * kRowWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (k >= warps) return;
  float* part = partials + (size_t)k * (d + 1);
  for (int c = lane; c < d; c += 32) part[c] = 0.f;
  float dc = 0.f;
  for (int i = k * per; i < min(N, (k + 1) * per); i++) {
    float dk = 0.f;
    if (i % T_ > 0) {
      dk = gz[i] * z[i - 1];
      for (int x = 0; x < tiles; x++) dk += dk_part[(size_t)x * N + i];
    }
    float kt = keep[i], dscore = -dk * kt * (1.f - kt);
    T* det = de + (size_t)i * d;
    const T* et = e + (size_t)i * d;
    for (int c = lane; c < d; c += 32) {
      det[c] = (T)((float)det[c] + dscore * w[c]);
      part[c] += dscore * (float)et[c];
    }
    dc += dscore;
  }
  if (lane == 0) part[d] = dc;
}

int tiles_of(int d) { return (d + 31) / 32; }
int score_warps(size_t N) { return (int)std::min<size_t>(N, kMaxScoreWarps); }

}  // namespace

template <class A>
void patch_soft_forward_cuda(A* p, float* n, float* z, float* keep, const A* e, const float* w, const float* c, int B,
                             int T_, int P, int d, float* state, float* scratch, cudaStream_t stream) {
  size_t N = (size_t)B * T_;
  if (N == 0 || d == 0) return;
  soft_keep_kernel<<<blocks_for(N, kRowWarps), kThreads, 0, stream>>>(keep, e, w, c, (int)N, d);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  if (state)
    BYTELM_CUDA_CHECK(cudaMemcpyAsync(scratch, state + (size_t)B * d, sizeof(float) * B, cudaMemcpyDeviceToDevice,
                                      stream));
  dim3 grid(tiles_of(d), std::min(B, kMaxGridRows));
  soft_scan_forward_kernel<<<grid, kBlock, 0, stream>>>(p, n, z, e, keep, B, T_, P, patch_count(T_, P), d, state,
                                                        scratch);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

// dk shares [tiles, N], gz [N], window dots [B, Np], then the score's partial sums [warps, d + 1].
size_t patch_soft_backward_cuda_partials(int B, int T_, int P, int d) {
  size_t N = (size_t)B * T_;
  return (tiles_of(d) + 1) * N + (size_t)B * patch_count(T_, P) + (size_t)score_warps(N) * (d + 1);
}

template <class A>
void patch_soft_backward_cuda(A* de, float* dw, float* dc, const A* dp, const A* e, const float* w, const float* n,
                              const float* z, const float* keep, int B, int T_, int P, int d, float* partials,
                              cudaStream_t stream) {
  size_t N = (size_t)B * T_;
  if (N == 0 || d == 0) return;
  int Np = patch_count(T_, P), tiles = tiles_of(d), windows = B * Np;
  float *dk_part = partials, *gz = dk_part + tiles * N, *gdn = gz + N, *score = gdn + windows;
  if (windows > 0) {
    soft_window_dot_kernel<<<blocks_for(windows, kRowWarps), kThreads, 0, stream>>>(gdn, dp, n, windows, T_, P, Np,
                                                                                     d);
    BYTELM_CUDA_CHECK(cudaGetLastError());
  }
  soft_scan_backward_kernel<<<dim3(tiles, std::min(B, kMaxGridRows)), kBlock, 0, stream>>>(de, dk_part, gz, dp, n, z,
                                                                                          keep, gdn, B, T_, P, Np, d);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  int warps = score_warps(N), per = (int)((N + warps - 1) / warps);
  warps = (int)((N + per - 1) / per);  // every warp gets at least one byte
  soft_score_backward_kernel<<<blocks_for(warps, kRowWarps), kThreads, 0, stream>>>(
      de, score, dk_part, gz, z, keep, e, w, (int)N, T_, tiles, warps, per, d);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  add_partial_sums<float>({{dw, d, 0}, {dc, 1, d}}, score, warps, d + 1, stream);
}

#define BYTELM_INSTANTIATE(A)                                                                                       \
  template void patch_soft_forward_cuda<A>(A*, float*, float*, float*, const A*, const float*, const float*, int,   \
                                           int, int, int, float*, float*, cudaStream_t);                           \
  template void patch_soft_backward_cuda<A>(A*, float*, float*, const A*, const A*, const float*, const float*,    \
                                            const float*, const float*, int, int, int, int, float*, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
