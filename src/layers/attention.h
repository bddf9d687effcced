// Causal multi-head attention, the core of the transformer family. For batch row b, head h and position t:
//   o[b,t,h,:] = sum_{s<=t} softmax_s(scale * q[b,t,h,:] . k[b,s,h,:]) v[b,s,h,:]
// q, k, v (and dq, dk, dv) are [B, T, H, Dh] with row stride `qkv_stride` between positions, so they can point
// into one packed qkv projection [B, T, 3, H, Dh] (stride 3*H*Dh); o and dout are dense [B, T, H, Dh].
// lse [B, H, T] keeps each row's log-sum-exp of the scaled scores for the backward, which recomputes the
// probabilities from it instead of storing a T x T matrix.
#pragma once

namespace bytelm {

struct AttentionShape {
  int B = 1, T = 1, H = 1, Dh = 1;
  int qkv_stride = 0;  // elements from position t to t+1 in q, k, v, dq, dk, dv; 0 means dense (H * Dh)
  int stride() const { return qkv_stride > 0 ? qkv_stride : H * Dh; }
};

template <class T>
void attention_forward(T* o, T* lse, const T* q, const T* k, const T* v, AttentionShape s, T scale);

// dq, dk, dv are overwritten. delta [B, H, T] is scratch (rowsum(dout * o)).
template <class T>
void attention_backward(T* dq, T* dk, T* dv, T* delta, const T* dout, const T* q, const T* k, const T* v, const T* o,
                        const T* lse, AttentionShape s, T scale);

// The streaming step: one new position a row against a key/value cache. q, k, v [B, H, Dh] (row stride
// `qkv_stride`, so they can point into a packed qkv row) are the new position's; k_cache and v_cache
// [B, slots, H, Dh] are ring buffers holding position p in slot p % slots. The step writes k and v at position
// `pos`, then the query attends to positions max(0, pos - slots + 1)..pos, oldest first as the parallel forward
// sums them: while pos < slots, o [B, H, Dh] is row pos of attention_forward over the positions so far.
template <class T>
void attention_decode(T* o, T* k_cache, T* v_cache, const T* q, const T* k, const T* v, int qkv_stride, int B, int H,
                      int Dh, int slots, int pos, T scale);

}  // namespace bytelm
