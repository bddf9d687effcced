// CUDA attention pooling of byte patches (see patch_attn.h). One warp a patch: the P scores are warp sums,
// every lane holds them all and takes the softmax itself. Byte and patch rows are of the storage type A
// (float or bf16); the query, its gradient and the softmax weights are fp32. The query's gradient is summed
// per warp over a fixed range of patches, then the warps' rows in order: bit-reproducible.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace bytelm {

// Patches longer than this are refused (the scores of a patch live in each lane's registers).
constexpr int kPatchAttnMaxP = 64;

// p [B, T/P, d], weights [B, T/P, P] as in patch_attn_forward.
template <class A>
void patch_attn_forward_cuda(A* p, float* weights, const A* e, const float* q, int B, int T_, int P, int d,
                             cudaStream_t stream);

// Floats of scratch the backward needs (one row of d a warp).
size_t patch_attn_backward_cuda_partials(int B, int T_, int P, int d);

// de += d/de, dq += d/dq.
template <class A>
void patch_attn_backward_cuda(A* de, float* dq, const A* dp, const A* e, const float* q, const float* weights, int B,
                              int T_, int P, int d, float* partials, cudaStream_t stream);

}  // namespace bytelm
