// The `transformer` and `hybrid` families: one composition of pre-LayerNorm blocks on bytes, whose mixer is
// causal self-attention (transformer: every layer) or an S4D-Lin long convolution (hybrid: the layers that
// `hybrid_layers` marks 's').
//   x_0 = Embed(x) (+ Proj(BigramTable[hash(x_{t-1}, x_t)]));  r = SmearGate(x_0)
//   L blocks:  r += Mixer(LN1(r));  r += W2 leaky_relu(W1 LN2(r), 0.5)^2
//              U-Net: after block L-1-i (i < L/2), r += skip_i * (the input of block i)
//   logits = softcap * tanh(LN(r) E^T / softcap)       (the head is the embedding E, transposed)
// Attention mixer: qkv = LN1(r) W_qkv^T packed [q | k | v], RoPE on q and k, causal softmax attention over
// heads of head_dim, output projection. Long-convolution mixer (S4D-Lin; layers/causal_conv.h):
//   [v | z] = LN1(r) W_in^T;  c = silu(CausalConv_K(v) + bias);  out = (c * silu(z)) W_out^T, W_out zero at init,
// with per-channel kernels of conv_len taps initialised as S4D-Lin decaying (oscillating) exponentials.
// Every trick (rope, tie_embeddings, softcap, mlp_leak, smear, bigram_buckets, unet) is a config key.
//
// Streaming (make_streams): per attention layer a key/value cache of `context` positions, per convolution layer
// its last conv_len - 1 inputs, and the previous byte and embedding for the bigram and the SmearGate: a step
// costs O(context) and, while the stream is at most `context` bytes long, gives the parallel forward's
// predictions. Past `context` bytes the cache slides: each attention layer attends to the most recent `context`
// positions (RoPE keeps relative positions exact). The kept keys and values were computed with the older bytes
// still in view, so from then on the predictions are those of sliding-window attention, not of any one
// parallel forward window.
//
// One composition over two backends, as the mamba family: the CPU reference (fp32 for training, fp64 for
// gradient checks) and the GPU (CudaOps: bf16 or fp32 activations; fp32 parameters, gradients, LayerNorm and
// attention statistics, SmearGate gates and convolution stream state; the KV caches in the activation type).
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "models/model.h"

namespace bytelm {

// The families' derived shapes.
struct TransformerDims {
  int d, heads, head_dim, hidden, layers, skips, smear_width;
  explicit TransformerDims(const ModelConfig& c)
      : d(c.d),
        heads(c.d / c.head_dim),
        head_dim(c.head_dim),
        hidden(4 * c.d),
        layers(c.layers),
        skips(c.unet ? c.layers / 2 : 0),
        smear_width(std::min(12, c.d)) {}  // the SmearGate reads the first 12 channels (modded-nanogpt's choice)
};

// The mixer of layer l: 'a' (attention) or 's' (long convolution).
char transformer_mixer(const ModelConfig& config, int layer);

// Error for a transformer or hybrid config the family cannot build (model.cpp's check_config calls it).
void check_transformer_config(const ModelConfig& config);

template <class T>
std::unique_ptr<Model<T>> make_transformer_model(const ModelConfig& config, uint64_t seed);
#ifdef BYTELM_WITH_CUDA
// gemm: "bf16", "tf32" or "fp32" (see GemmPrecision in cuda_ops.h).
std::unique_ptr<Model<float>> make_transformer_model_cuda(const ModelConfig& config, uint64_t seed,
                                                          const std::string& gemm);
#endif

int64_t transformer_param_count(const ModelConfig& config);

}  // namespace bytelm
