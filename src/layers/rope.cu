// RoPE on the GPU: a thread per (position, pair), which computes the pair's angle once and rotates that pair in
// every head of the row (the angle depends on the position and the pair only).
#include "core/bf16.h"
#include "layers/cuda_common.cuh"
#include "layers/rope_cuda.h"

namespace bytelm {

using namespace cuda;

namespace {

template <class T>
__global__ void rope_kernel(T* x, RopeShape s, int ld, double base, double sign) {
  int half = s.Dh / 2;
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)s.B * s.T * half) return;
  size_t row = i / half;
  int pair = (int)(i % half), t = (int)(row % s.T);
  double angle = double(s.pos0 + t) * pow(base, -2.0 * pair / s.Dh);
  float c = (float)cos(angle), sn = (float)(sign * sin(angle));
  T* v = x + row * ld + 2 * pair;
  for (int h = 0; h < s.heads; h++, v += s.Dh) {
    float x0 = (float)v[0], x1 = (float)v[1];
    v[0] = (T)(x0 * c - x1 * sn);
    v[1] = (T)(x0 * sn + x1 * c);
  }
}

template <class A>
void rotate(A* x, RopeShape s, double base, double sign, cudaStream_t stream) {
  size_t n = (size_t)s.B * s.T * (s.Dh / 2);
  if (n == 0 || s.heads == 0) return;
  rope_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, s, s.row_stride(), base, sign);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

template <class A>
void rope_forward_cuda(A* x, RopeShape s, cudaStream_t stream, double base) {
  rotate(x, s, base, 1.0, stream);
}

template <class A>
void rope_backward_cuda(A* dx, RopeShape s, cudaStream_t stream, double base) {
  rotate(dx, s, base, -1.0, stream);
}

#define BYTELM_INSTANTIATE(A)                                              \
  template void rope_forward_cuda<A>(A*, RopeShape, cudaStream_t, double); \
  template void rope_backward_cuda<A>(A*, RopeShape, cudaStream_t, double);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(bf16)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
