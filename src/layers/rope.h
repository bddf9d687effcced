// Rotary position embedding (RoPE), in place. Each head's Dh channels form Dh/2 pairs (2i, 2i+1), and at
// position p the pair is rotated by the angle p * base^(-2i/Dh):
//   (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos)
// so q . k after rotation depends on the two positions only through their difference.
// x is [B, T, heads, Dh] with `stride` elements from one position to the next, so one call can rotate q and k
// side by side in a packed qkv row ([q | k | v], heads = 2H, stride 3 H Dh). Position t of the call is pos0 + t
// (streaming passes the stream's position).
#pragma once

namespace bytelm {

struct RopeShape {
  int B = 1, T = 1, heads = 1, Dh = 2;  // Dh even
  int stride = 0;                       // 0: dense (heads * Dh)
  int pos0 = 0;
  int row_stride() const { return stride > 0 ? stride : heads * Dh; }
};

template <class T>
void rope_forward(T* x, RopeShape s, double base = 10000.0);

// The inverse rotation: dx (the gradient of the rotated values on entry) becomes the gradient of the inputs.
template <class T>
void rope_backward(T* dx, RopeShape s, double base = 10000.0);

}  // namespace bytelm
