// CUDA diagonal SSM layer (see diag_ssm.h for the maths and the contract).
// The recurrence runs chunked in time: each block owns one sequence and 32
// channels, its 16 warps scan 16 consecutive 8-step chunks at once, and the
// chunk carries are combined with a^8 (see diag_ssm.cu). Short sequences (up to
// 64 steps: patching local's patches, streaming) take a thread per channel and
// group of sequences instead, stepping in order. Any number of sequences.
// dlam is reduced over the batch without atomics, so the backward is
// bit-reproducible.
// Sequences (x, u, h, y and their gradients) are of the storage type A (float
// or bf16), the recurrence state is fp32 in registers; lam, h0 and every
// gradient are fp32, and the matrix products read W_in/W_out as A.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "layers/diag_ssm.h"
#include "layers/linear_cuda.h"

namespace bytelm {

// h = scan(u) over [B, T, d]; h0 is [B, d] or null. h_last ([B, d] or null, may be h0) receives the state after
// the last step in fp32 (h itself is stored as A), for streaming.
template <class A>
void diag_scan_forward_cuda(A* h, const A* u, const float* lam, int B, int T_, int d, const float* h0,
                            float* h_last, cudaStream_t stream);

// Floats of scratch (`partials`) that diag_scan_backward_cuda needs.
size_t diag_scan_backward_cuda_partials(int B, int T_, int d);

// Given dh (overwritten in place by du) and the forward's u and h: du, and dlam += d/dlam.
// Like the CPU version, the backward takes no h0: h_{-1} counts as zero for dlam.
template <class A>
void diag_scan_backward_cuda(A* dh_to_du, float* dlam, const A* u, const A* h, const float* lam, int B, int T_, int d,
                             float* partials, cudaStream_t stream);

// Whole layer, and h_last (see diag_ssm.h). u and h ([B*T, d]) are kept for the backward.
template <class A>
void diag_ssm_forward_cuda(A* y, A* u, A* h, const A* x, DiagSsmWeights<float, A> w, int B, int T_, int d,
                           const float* h0, float* h_last, Gemm gemm, cudaStream_t stream);

// Floats of scratch (`partials`) that diag_ssm_backward_cuda needs: the scan's.
inline size_t diag_ssm_backward_cuda_partials(int B, int T_, int d) {
  return diag_scan_backward_cuda_partials(B, T_, d);
}

// dx = d/dx (overwrites), grads accumulate. scratch: [B*T*d] (dh), partials: see above.
template <class A>
void diag_ssm_backward_cuda(A* dx, DiagSsmGrads<float> g, const A* dy, const A* x, const A* u, const A* h,
                            DiagSsmWeights<float, A> w, int B, int T_, int d, A* scratch, float* partials, Gemm gemm,
                            cudaStream_t stream);

}  // namespace bytelm
