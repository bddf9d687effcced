// CUDA causal multi-head attention (see attention.h for the layout and the math): fused, FlashAttention-2 style.
// Tiles of queries meet tiles of keys in shared memory with an online softmax, so no T x T matrix ever reaches
// global memory and memory stays linear in T; tiles wholly above the diagonal are never visited. lse [B,H,T] and
// delta [B,H,T] are fp32 in both storage types.
//
// A = bf16 with Dh 64 or 128 and 16-byte aligned rows (pointers and qkv stride): tensor cores (mma.sync
// m16n8k16, bf16 operands, fp32 accumulation and softmax statistics). Every other case (A = float, other head
// dims up to 256, unaligned rows): a plain fp32-arithmetic kernel, a warp per row, slow but exact enough for the
// parity tests. Head dims above 256 are refused with an Error.
//
// The backward is deterministic (no atomics): delta = rowsum(dout * o) first, then one kernel owns each key
// tile's dk, dv (looping over query tiles) and one owns each query tile's dq (looping over key tiles), both
// recomputing the probabilities from lse. dq, dk, dv and delta are overwritten. Nothing synchronises the host.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "layers/attention.h"

namespace bytelm {

template <class A>
void attention_forward_cuda(A* o, float* lse, const A* q, const A* k, const A* v, AttentionShape s, float scale,
                            cudaStream_t stream);

template <class A>
void attention_backward_cuda(A* dq, A* dk, A* dv, float* delta, const A* dout, const A* q, const A* k, const A* v,
                             const A* o, const float* lse, AttentionShape s, float scale, cudaStream_t stream);

// The streaming step (see attention_decode in attention.h): a block per (row, head) writes the new key and value
// into the caches (A), scores every cached position into `scores` (fp32 scratch of
// attention_decode_cuda_scratch(B, H, slots) floats), and sums the values in position order as the CPU does.
template <class A>
void attention_decode_cuda(A* o, A* k_cache, A* v_cache, const A* q, const A* k, const A* v, int qkv_stride, int B,
                           int H, int Dh, int slots, int pos, float scale, float* scores, cudaStream_t stream);
size_t attention_decode_cuda_scratch(int B, int H, int slots);

// True when bf16 calls of this shape run on the tensor cores (Dh 64 or 128, qkv stride a multiple of 8), given
// 16-byte aligned pointers (cudaMalloc'd buffers are); else the plain kernel serves them. For tests and benchmarks.
bool attention_uses_tensor_cores(AttentionShape s);

}  // namespace bytelm
