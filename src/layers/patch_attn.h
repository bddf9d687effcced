// Attention pooling of byte patches: each complete patch of P bytes becomes a weighted sum of its byte
// embeddings, the weights a softmax over the P bytes of their scores against one learned query q [d]:
//
//   s_i = (e_i . q) / sqrt(d),   w = softmax(s_0 .. s_{P-1}),   p = sum_i w_i e_i.
//
// It mixes only the bytes of one patch, so the causal broadcast of patch.h reads it exactly as it reads a mean
// (byte t reads patch (t + 1) / P - 1, whose bytes all lie at or before t). At q = 0 every weight is 1/P: the
// mean pooling, which is where a model starts. Only the T / P complete patches are formed.
#pragma once

namespace bytelm {

// p [B, T/P, d] = the attention pool of each complete patch of e [B, T, d]; weights [B, T/P, P] receive the
// softmax weights, which the backward reads.
template <class T>
void patch_attn_forward(T* p, T* weights, const T* e, const T* q, int B, int T_, int P, int d);

// de += d/de, dq += d/dq, from dp [B, T/P, d] and what the forward read and kept.
template <class T>
void patch_attn_backward(T* de, T* dq, const T* dp, const T* e, const T* q, const T* weights, int B, int T_, int P,
                         int d);

}  // namespace bytelm
