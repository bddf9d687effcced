// Soft patching: learned boundaries with soft assignment, at the fixed patch rate of patch.h.
//
// Every byte scores how likely it starts a new segment, b_t = sigmoid(w . e_t + c). The cumulative scores
// S_t = sum_{i<=t} -log(1 - b_i) give each byte a soft position (how many segments have started by it), and the
// patch formed at the end of window j, t_j = (j + 1) P - 1, is a mean of the bytes up to t_j, each byte assigned
// to it by how little of a boundary lies between them:
//
//   p_j = sum_{i<=t_j} a_ij e_i / sum_{i<=t_j} a_ij,   a_ij = exp(-(S_{t_j} - S_i)) = prod_{i<m<=t_j} (1 - b_m).
//
// A hard boundary (b_m = 1) cuts the bytes before m off every patch after it: a patch is then the mean of its
// segment so far (a word, say), however long. It is one scan along the bytes, n_t = k_t n_{t-1} + e_t and
// z_t = k_t z_{t-1} + 1 with k_t = 1 - b_t, read as p_j = n_{t_j} / z_{t_j}: O(1) state a stream (n, z), and
// causal, since p_j reads bytes <= t_j only and byte t reads patch (t + 1) / P - 1 of patch.h, which ends at or
// before t. The patch-rate model keeps its shape [B, T/P, d]; only the T / P complete windows form a patch.
#pragma once

namespace bytelm {

// p [B, T/P, d] from e [B, T, d] and the score's w [d] and c [1]. n [B, T, d], z [B, T] and keep [B, T] (= k)
// receive the scan, which the backward reads. state (n [B, d] then z [B], or null for zero) is the scan before
// byte 0, and when given it receives the scan after the last byte: streaming is the forward at T = 1 and P = 1.
template <class T>
void patch_soft_forward(T* p, T* n, T* z, T* keep, const T* e, const T* w, const T* c, int B, int T_, int P, int d,
                        T* state);

// de += d/de, dw += d/dw, dc += d/dc from dp [B, T/P, d]; the forward started from zero state.
template <class T>
void patch_soft_backward(T* de, T* dw, T* dc, const T* dp, const T* e, const T* w, const T* n, const T* z,
                         const T* keep, int B, int T_, int P, int d);

}  // namespace bytelm
