// Local patching: a MegaByte-style autoregressive decoder over the bytes of each patch.
//
// After the patch-rate blocks and patch.h's broadcast (byte t gets its latest complete patch's output plus its own
// embedding), a small stack of the same blocks (LayerNorm -> diagonal SSM -> LayerNorm -> SwiGLU, residual) runs
// at byte rate with its SSM restarted at every patch start: the [B*T/P, P, d] view of the bytes. Byte t = jP + r
// then reads its own patch's bytes jP..t besides the patch-rate context, which covers the bytes before jP (and at
// the patch's last byte, the whole patch). Those are the bytes that the broadcast alone leaves out: with it only,
// a byte inside a patch knows nothing of the bytes since the patch began but itself. Causal: the local scan reads
// bytes jP..t and the broadcast patches that end at or before t. A stream restarts its local state at each patch.
//
// It is a composition of layers that have CUDA kernels, so it runs on both backends; this file says only how the
// restarts split B rows of T bytes into the SSM's sequences.
#pragma once
#include <cstddef>

namespace bytelm {

// Calls f(first_row, sequences, length) for runs of `sequences` consecutive scans of `length` rows each, starting
// at row first_row of the [B*T] rows, that restart every P rows of each row of T (a row's last scan is short when
// P does not divide T). When P divides T (training windows) that is one run of B T / P scans.
template <class F>
void for_each_patch_scan(int B, int T, int P, F f) {
  if (T % P == 0) return f(size_t(0), B * (T / P), P);
  for (int b = 0; b < B; b++) {
    size_t row = (size_t)b * T;
    if (T / P > 0) f(row, T / P, P);
    f(row + (size_t)(T / P) * P, 1, T % P);
  }
}

}  // namespace bytelm
