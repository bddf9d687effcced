// CUDA byte patching (see patch.h for the causality rule and shapes).
// dstart is summed by one thread per column in a fixed order: bit-reproducible.
#pragma once
#include <cuda_runtime.h>

#include "layers/patch.h"

namespace bytelm {

// p [B, T/P, d] = mean of each complete patch of e [B, T, d].
template <class T>
void patch_mean_forward_cuda(T* p, const T* e, int B, int T_, int P, int d, cudaStream_t stream);

// de += d/de.
template <class T>
void patch_mean_backward_cuda(T* de, const T* dp, int B, int T_, int P, int d, cudaStream_t stream);

// out[b, t] = (k(t) >= 0 ? p[b, k(t)] : start) + e[b, t].
template <class T>
void patch_broadcast_forward_cuda(T* out, const T* p, const T* start, const T* e, int B, int T_, int P, int d,
                                  cudaStream_t stream);

// dp = d/dp (overwrites), dstart += d/dstart, de = dout (overwrites).
template <class T>
void patch_broadcast_backward_cuda(T* dp, T* dstart, T* de, const T* dout, int B, int T_, int P, int d,
                                   cudaStream_t stream);

}  // namespace bytelm
