// CUDA selective scan (see selective_scan.h for the maths and the contract), with the step-size softplus
// (+ dt_bias) and the SiLU output gate fused in. A thread owns one channel of one sequence and walks time
// with the channel's N states in fp32 registers; x, dt, BC, z, y and their gradients are of the storage type
// A (float or bf16), the weights, their gradients and the streaming state ([B, N, Di], as on the CPU) fp32.
//
// The backward never stores the (B, T, Di, N) states: it reruns the recurrence once to keep the states at
// every kSelectiveScanChunk-th step, then, chunk by chunk from the last, recomputes the chunk's states into
// shared memory and walks it backward. Every sum over channels (dB, dC) or sequences (dA_log, dD, dt_bias)
// is a fixed-order sum of per-warp or per-sequence partials, never an atomic: the backward is bit-reproducible.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "layers/selective_scan.h"

namespace bytelm {

constexpr int kSelectiveScanMaxState = 16;  // N the kernels take (their register arrays); Mamba's is 16
constexpr int kSelectiveScanChunk = 16;     // steps a backward chunk recomputes (its shared-memory history)

// y [B*T, Di]; state [B, N, Di] (fp32) or null, as selective_scan_forward. At T = 1 with the state carried this
// is the streaming step.
template <class A>
void selective_scan_forward_cuda(A* y, ScanInputs<A> in, SelectiveScanWeights<float> w, int B, int T_, int Di, int N,
                                 float* state, cudaStream_t stream);

// Bytes of workspace selective_scan_backward_cuda needs: the chunk-boundary states, the per-warp partials of dB
// and dC, the per-sequence partials of the weight gradients.
size_t selective_scan_backward_cuda_workspace_bytes(int B, int T_, int Di, int N);

// From a zero state: the input gradients are overwritten, the weight gradients accumulate.
template <class A>
void selective_scan_backward_cuda(ScanInputGrads<A> grad_in, SelectiveScanGrads<float> g, const A* dy,
                                  ScanInputs<A> in, SelectiveScanWeights<float> w, int B, int T_, int Di, int N,
                                  void* workspace, cudaStream_t stream);

}  // namespace bytelm
