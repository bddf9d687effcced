// Byte patching: mean-pool every P bytes into a patch, and broadcast patch
// outputs back to bytes without leaking the future.
//
// Causality rule: byte t may only read a patch whose bytes all lie at or
// before t. The most recent such patch is k(t) = (t + 1) / P - 1, so the last
// byte of a patch already reads that patch's own output, and every other byte
// reads the previous patch. Bytes before the first complete patch read a
// learned `start` vector. Only the T / P complete patches are ever formed.
#pragma once

namespace bytelm {

inline int patch_count(int T, int P) { return T / P; }
inline int patch_source(int t, int P) { return (t + 1) / P - 1; }

// p [B, T/P, d] = mean of each complete patch of e [B, T, d].
template <class T>
void patch_mean_forward(T* p, const T* e, int B, int T_, int P, int d);

// de += d/de.
template <class T>
void patch_mean_backward(T* de, const T* dp, int B, int T_, int P, int d);

// out[b, t] = (k(t) >= 0 ? p[b, k(t)] : start) + e[b, t].
template <class T>
void patch_broadcast_forward(T* out, const T* p, const T* start, const T* e, int B, int T_, int P, int d);

// dp = d/dp (overwrites), dstart += d/dstart, de = dout (overwrites).
template <class T>
void patch_broadcast_backward(T* dp, T* dstart, T* de, const T* dout, int B, int T_, int P, int d);

}  // namespace bytelm
