#include <cmath>
#include <string>

#include "core/bf16.h"
#include "core/error.h"
#include "layers/cuda_common.cuh"
#include "layers/patch.h"
#include "layers/patch_attn_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

constexpr int kWarps = kThreads / 32;
constexpr int kMaxWarps = 1024;  // backward: warps (rows of dq partial sums), fixed by the patch count alone

void check_shape(int P, const char* what) {
  if (P > kPatchAttnMaxP)
    throw Error(std::string(what) + ": patches of at most " + std::to_string(kPatchAttnMaxP) + " bytes, got " +
                std::to_string(P));
}

// Patch `j` (of B * Np, row-major over b) starts at byte row b T + (j % Np) P of e.
__device__ inline size_t patch_first_row(int j, int T_, int P, int Np) {
  return (size_t)(j / Np) * T_ + (size_t)(j % Np) * P;
}

// The scores of the patch's P rows against q (scaled), softmaxed into w[0..P): the same in every lane.
template <class T>
__device__ void patch_softmax(float* w, const T* rows, const float* q, int P, int d, float scale) {
  int lane = threadIdx.x % 32;
  float top = -INFINITY;
  for (int r = 0; r < P; r++) {
    float s = 0.f;
    for (int c = lane; c < d; c += 32) s += (float)rows[(size_t)r * d + c] * q[c];
    w[r] = warp_sum(s) * scale;
    top = fmaxf(top, w[r]);
  }
  float total = 0.f;
  for (int r = 0; r < P; r++) total += w[r] = expf(w[r] - top);
  for (int r = 0; r < P; r++) w[r] /= total;
}

template <class T>
__global__ void patch_attn_forward_kernel(T* p, float* weights, const T* e, const float* q, int patches, int T_,
                                          int P, int Np, int d, float scale) {
  int j = blockIdx.x * kWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (j >= patches) return;
  const T* rows = e + patch_first_row(j, T_, P, Np) * d;
  float w[kPatchAttnMaxP];
  patch_softmax(w, rows, q, P, d, scale);
  for (int c = lane; c < d; c += 32) {
    float s = 0.f;
    for (int r = 0; r < P; r++) s += w[r] * (float)rows[(size_t)r * d + c];
    p[(size_t)j * d + c] = (T)s;
  }
  if (lane < P) weights[(size_t)j * P + lane] = w[lane];
  for (int r = 32 + lane; r < P; r += 32) weights[(size_t)j * P + r] = w[r];
}

// Warp k takes patches [k per, (k + 1) per): de of each patch, and its share of dq summed in patch order
// into partials[k] (every column c written by lane c % 32).
template <class T>
__global__ void patch_attn_backward_kernel(T* de, float* partials, const T* dp, const T* e, const float* q,
                                           const float* weights, int patches, int warps, int per, int T_, int P,
                                           int Np, int d, float scale) {
  int k = blockIdx.x * kWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (k >= warps) return;
  float* dq_part = partials + (size_t)k * d;
  for (int c = lane; c < d; c += 32) dq_part[c] = 0.f;
  for (int j = k * per; j < min(patches, (k + 1) * per); j++) {
    size_t first = patch_first_row(j, T_, P, Np);
    const T* rows = e + first * d;
    T* drows = de + first * d;
    const T* g = dp + (size_t)j * d;
    const float* w = weights + (size_t)j * P;
    float ds[kPatchAttnMaxP], weighted = 0.f;  // dw_r = g . e_r, then ds_r = w_r (dw_r - sum_k w_k dw_k)
    for (int r = 0; r < P; r++) {
      float s = 0.f;
      for (int c = lane; c < d; c += 32) s += (float)g[c] * (float)rows[(size_t)r * d + c];
      ds[r] = warp_sum(s);
      weighted += w[r] * ds[r];
    }
    for (int r = 0; r < P; r++) ds[r] = w[r] * (ds[r] - weighted) * scale;
    for (int c = lane; c < d; c += 32) {
      float gc = (float)g[c], qc = q[c], dqc = 0.f;
      for (int r = 0; r < P; r++) {
        size_t i = (size_t)r * d + c;
        drows[i] = (T)((float)drows[i] + w[r] * gc + ds[r] * qc);
        dqc += ds[r] * (float)rows[i];
      }
      dq_part[c] += dqc;
    }
  }
}

int backward_warps(int patches) { return patches < kMaxWarps ? patches : kMaxWarps; }

}  // namespace

template <class A>
void patch_attn_forward_cuda(A* p, float* weights, const A* e, const float* q, int B, int T_, int P, int d,
                             cudaStream_t stream) {
  check_shape(P, "patch_attn_forward_cuda");
  int Np = patch_count(T_, P), patches = B * Np;
  if (patches == 0 || d == 0) return;
  patch_attn_forward_kernel<<<blocks_for(patches, kWarps), kThreads, 0, stream>>>(p, weights, e, q, patches, T_, P,
                                                                                   Np, d, 1.f / sqrtf((float)d));
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

size_t patch_attn_backward_cuda_partials(int B, int T_, int P, int d) {
  return (size_t)backward_warps(B * patch_count(T_, P)) * d;
}

template <class A>
void patch_attn_backward_cuda(A* de, float* dq, const A* dp, const A* e, const float* q, const float* weights, int B,
                              int T_, int P, int d, float* partials, cudaStream_t stream) {
  check_shape(P, "patch_attn_backward_cuda");
  int Np = patch_count(T_, P), patches = B * Np;
  if (patches == 0 || d == 0) return;
  int warps = backward_warps(patches), per = (patches + warps - 1) / warps;
  warps = (patches + per - 1) / per;  // every warp gets at least one patch
  patch_attn_backward_kernel<<<blocks_for(warps, kWarps), kThreads, 0, stream>>>(
      de, partials, dp, e, q, weights, patches, warps, per, T_, P, Np, d, 1.f / sqrtf((float)d));
  BYTELM_CUDA_CHECK(cudaGetLastError());
  add_partial_sums(dq, partials, warps, d, d, stream);
}

#define BYTELM_INSTANTIATE(A)                                                                                   \
  template void patch_attn_forward_cuda<A>(A*, float*, const A*, const float*, int, int, int, int, cudaStream_t); \
  template void patch_attn_backward_cuda<A>(A*, float*, const A*, const A*, const float*, const float*, int, int, \
                                            int, int, float*, cudaStream_t);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
