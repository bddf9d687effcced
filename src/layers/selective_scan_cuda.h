// CUDA selective scan (see selective_scan.h for the maths and the contract), with the step-size softplus
// (+ dt_bias) and the SiLU output gate fused in. A thread owns one state of one channel of one sequence (16 threads
// a channel) and walks time with it in an fp32 register; x, dt, BC, z, y and their gradients are of the storage type
// A (float or bf16), the weights, their gradients and the streaming state ([B, N, Di], as on the CPU) fp32.
//
// The backward never stores the (B, T, Di, N) states: it reruns the recurrence once to keep the states at every
// kSelectiveScanRows-th step, then, segment by segment from the last, recomputes the segment's states into
// registers a few rows at a time and walks them backward. Every sum over channels (dB, dC) or sequences (dA_log,
// dD, dt_bias) is a fixed-order sum of per-block or per-sequence partials, never an atomic: the backward is
// bit-reproducible.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "layers/selective_scan.h"

namespace bytelm {

constexpr int kSelectiveScanMaxState = 16;  // N the kernels take (a thread a state, 16 a channel); Mamba's is 16
constexpr int kSelectiveScanRows = 32;      // rows staged at a time; the backward keeps the state before each 32

// y [B*T, Di]; state [B, N, Di] (fp32) or null, as selective_scan_forward. At T = 1 with the state carried this
// is the streaming step.
template <class A>
void selective_scan_forward_cuda(A* y, ScanInputs<A> in, SelectiveScanWeights<float> w, int B, int T_, int Di, int N,
                                 float* state, cudaStream_t stream);

// Bytes of workspace selective_scan_backward_cuda needs: the segment-boundary states, the per-tile partials of dB
// and dC, the per-sequence partials of the weight gradients.
size_t selective_scan_backward_cuda_workspace_bytes(int B, int T_, int Di, int N);

// From a zero state: the input gradients are overwritten, the weight gradients accumulate.
template <class A>
void selective_scan_backward_cuda(ScanInputGrads<A> grad_in, SelectiveScanGrads<float> g, const A* dy,
                                  ScanInputs<A> in, SelectiveScanWeights<float> w, int B, int T_, int Di, int N,
                                  void* workspace, cudaStream_t stream);

}  // namespace bytelm
