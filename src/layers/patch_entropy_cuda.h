// CUDA entropy patching (see patch_entropy.h for the rule, the shapes and the bigram table's loss). The table's
// rows' entropies are worked out in double by a warp a row and rounded to float as the host's are, so both sides
// make the same decisions but within a float rounding of the threshold; the segmentation walks each row's bytes
// in one thread (it is sequential and cheap). Pooling, broadcast and their backward give each output one owner
// and sum in the host's order; the table's gradient counts bytes and byte pairs with integer atomics (exact,
// so the result does not depend on their order). Byte and patch rows are of the storage type A (float or bf16);
// the table, start, their gradients and the streams' open sums are fp32.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/device_buffer.h"

namespace bytelm {

// EntropyPatches in device memory: first and length [B, slots], source [B, T].
struct EntropyPatchesCuda {
  int B = 0, T = 0, slots = 0;
  DeviceBuffer<int> first, length, source;
};

// Floats of scratch entropy_patches_cuda and bigram_loss_forward_cuda need (a row statistic a table row).
constexpr size_t kBigramRowsScratch = 256;

// s = the patches of x [B, T] (device bytes) under table G [256, 256]; grows s's buffers when needed.
void entropy_patches_cuda(EntropyPatchesCuda& s, const float* G, const uint8_t* x, int B, int T_, int P,
                          double threshold, float* scratch, cudaStream_t stream);

// The streams' patches, B of them at T = 1 (one slot): every source -1, the start vector.
void entropy_stream_patches_cuda(EntropyPatchesCuda& s, int B, cudaStream_t stream);

template <class A>
void patch_entropy_pool_forward_cuda(A* p, const A* e, const EntropyPatchesCuda& s, int d, cudaStream_t stream);
template <class A>
void patch_entropy_pool_backward_cuda(A* de, const A* dp, const EntropyPatchesCuda& s, int d, cudaStream_t stream);
template <class A>
void patch_entropy_broadcast_forward_cuda(A* out, const A* p, const float* start, const A* e,
                                          const EntropyPatchesCuda& s, int d, cudaStream_t stream);
template <class A>
void patch_entropy_broadcast_backward_cuda(A* dp, float* dstart, A* de, const A* dout, const EntropyPatchesCuda& s,
                                           int d, cudaStream_t stream);

// loss [N] = each byte's bigram cross-entropy, as bigram_loss_forward.
void bigram_loss_forward_cuda(float* loss, const float* G, const uint8_t* x, const uint8_t* y, int N, float* scratch,
                              cudaStream_t stream);

// Bytes of workspace bigram_loss_backward_cuda needs (the byte and pair counts, the rows' log-sum-exps).
size_t bigram_loss_backward_cuda_workspace_bytes();

// dG += scale * d(sum of the N losses)/dG.
void bigram_loss_backward_cuda(float* dG, const float* G, const uint8_t* x, const uint8_t* y, int N, float scale,
                               void* workspace, cudaStream_t stream);

// patch_entropy_step on the device (x: device bytes [B]; sum fp32 [B, d]; closes, length, source [B]).
template <class A>
void patch_entropy_step_cuda(A* patch, int* closes, float* sum, int* length, int* source, const A* e,
                             const uint8_t* x, const float* G, int B, int P, int d, double threshold,
                             cudaStream_t stream);

}  // namespace bytelm
