// CUDA byte patching (see patch.h for the causality rule and shapes).
// dstart is summed by one thread per column in a fixed order: bit-reproducible.
// Byte and patch rows are of the storage type A (float or bf16); start and dstart are fp32.
#pragma once
#include <cuda_runtime.h>

#include "layers/patch.h"

namespace bytelm {

// p [B, T/P, d] = mean of each complete patch of e [B, T, d].
template <class A>
void patch_mean_forward_cuda(A* p, const A* e, int B, int T_, int P, int d, cudaStream_t stream);

// de += d/de.
template <class A>
void patch_mean_backward_cuda(A* de, const A* dp, int B, int T_, int P, int d, cudaStream_t stream);

// out[b, t] = (k(t) >= 0 ? p[b, k(t)] : start) + e[b, t].
template <class A>
void patch_broadcast_forward_cuda(A* out, const A* p, const float* start, const A* e, int B, int T_, int P, int d,
                                  cudaStream_t stream);

// dp = d/dp (overwrites), dstart += d/dstart, de = dout (overwrites).
template <class A>
void patch_broadcast_backward_cuda(A* dp, float* dstart, A* de, const A* dout, int B, int T_, int P, int d,
                                   cudaStream_t stream);

}  // namespace bytelm
