// CUDA soft patching (see patch_soft.h for the maths and the contract). Every byte's keep k_t = 1 - b_t is a warp
// dot product; the scan n_t = k_t n_{t-1} + e_t runs chunked in time as diag_ssm.cu's does (a block owns one row
// and 32 channels, 16 warps scan 16 chunks of 8 bytes at once, and the chunk carries fold in order), with the
// product of the chunk's k_t in place of a^L; each thread also carries the row's z_t = k_t z_{t-1} + 1, the same
// in every channel. The backward is the scan reversed; the boundary score's gradients (w, c) are summed per warp
// over fixed ranges of bytes, then those rows in order: bit-reproducible, no atomics.
// e, p and their gradients are of the storage type A (float or bf16); the scan (n, z), keep, w, c, the gradients
// of w and c and the streaming state are fp32: the boundary's gradient is a difference of terms of n's own size
// (n_{t-1} against the patch times z_{t-1}), which n rounded to bf16 would swamp.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace bytelm {

// p [B, T/P, d] (A), n [B, T, d], z [B, T] and keep [B, T] (fp32) as patch_soft_forward; state (n [B, d] then
// z [B], fp32, or null) is the scan before byte 0 and receives the scan after the last byte. scratch: B floats.
template <class A>
void patch_soft_forward_cuda(A* p, float* n, float* z, float* keep, const A* e, const float* w, const float* c, int B,
                             int T_, int P, int d, float* state, float* scratch, cudaStream_t stream);

// Floats of scratch (`partials`) that patch_soft_backward_cuda needs.
size_t patch_soft_backward_cuda_partials(int B, int T_, int P, int d);

// de += d/de, dw += d/dw, dc += d/dc from dp [B, T/P, d]; the forward started from zero state.
template <class A>
void patch_soft_backward_cuda(A* de, float* dw, float* dc, const A* dp, const A* e, const float* w, const float* n,
                              const float* z, const float* keep, int B, int T_, int P, int d, float* partials,
                              cudaStream_t stream);

}  // namespace bytelm
