// CUDA diagonal SSM layer (see diag_ssm.h for the maths and the contract).
// The recurrence runs chunked in time: each block owns one sequence and 32
// channels, its 16 warps scan 16 consecutive 8-step chunks at once, and the
// chunk carries are combined with a^8 (see diag_ssm.cu). dlam is reduced over
// the batch without atomics, so the backward is bit-reproducible.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "layers/diag_ssm.h"
#include "layers/linear_cuda.h"

namespace bytelm {

// h = scan(u) over [B, T, d]; h0 is [B, d] or null.
template <class T>
void diag_scan_forward_cuda(T* h, const T* u, const T* lam, int B, int T_, int d, const T* h0, cudaStream_t stream);

// Floats of scratch (`partials`) that diag_scan_backward_cuda needs.
size_t diag_scan_backward_cuda_partials(int B, int d);

// Given dh (overwritten in place by du) and the forward's u and h: du, and dlam += d/dlam.
// Like the CPU version, the backward takes no h0: h_{-1} counts as zero for dlam.
template <class T>
void diag_scan_backward_cuda(T* dh_to_du, T* dlam, const T* u, const T* h, const T* lam, int B, int T_, int d,
                             float* partials, cudaStream_t stream);

// Whole layer. u and h ([B*T, d]) are kept for the backward.
template <class T>
void diag_ssm_forward_cuda(T* y, T* u, T* h, const T* x, DiagSsmWeights<T> w, int B, int T_, int d, const T* h0,
                           Gemm gemm, cudaStream_t stream);

// Floats of scratch (`partials`) that diag_ssm_backward_cuda needs.
size_t diag_ssm_backward_cuda_partials(int B, int T_, int d);

// dx = d/dx (overwrites), grads accumulate. scratch: [B*T*d] (dh), partials: see above.
template <class T>
void diag_ssm_backward_cuda(T* dx, DiagSsmGrads<T> g, const T* dy, const T* x, const T* u, const T* h,
                            DiagSsmWeights<T> w, int B, int T_, int d, T* scratch, float* partials,
                            Gemm gemm, cudaStream_t stream);

}  // namespace bytelm
