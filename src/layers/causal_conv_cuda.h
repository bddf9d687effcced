// CUDA depthwise causal convolution + SiLU (see causal_conv.h for the maths and the contract).
// x, y, dx, dy are of the storage type A (float or bf16); the taps, the bias, their gradients and the
// streaming state ([B, K-1, C], the inputs as read, kept in fp32) are fp32. The pre-activations are summed in
// fp32 in the CPU's order (bias, then the taps oldest first). dw and dbias are reduced over the rows without
// atomics (per-block partial sums, then a fixed-order sum), so the backward is bit-reproducible. Any width K >= 1:
// up to kCausalConvMaxWidth (Mamba's 4) a thread per output; wider (the hybrid's 256) tiled in shared memory
// (causal_conv.cu says how). Stepping a stream with the state carried gives the whole sequence's forward to the bit.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace bytelm {

// The widest convolution the short kernels take (their per-thread tap arrays); wider ones run the tiled kernels.
constexpr int kCausalConvMaxWidth = 8;

template <class A>
void causal_conv_forward_cuda(A* y, const A* x, const float* w, const float* bias, int B, int T_, int C, int K,
                              float* state, cudaStream_t stream);

// Floats of scratch (`partials`) that causal_conv_backward_cuda needs; past kCausalConvMaxWidth it includes an
// fp32 copy of the gradient at the pre-activations, B T C floats.
size_t causal_conv_backward_cuda_partials(int B, int T_, int C, int K);

// From a zero state: dx = d/dx (overwrites), dw and dbias accumulate.
template <class A>
void causal_conv_backward_cuda(A* dx, float* dw, float* dbias, const A* dy, const A* x, const float* w,
                               const float* bias, int B, int T_, int C, int K, float* partials, cudaStream_t stream);

}  // namespace bytelm
