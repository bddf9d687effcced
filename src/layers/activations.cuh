// The scalar activations of activations.h for the kernels (include from .cu files only): fp32, the same formulas
// and the same float stages as the CPU's, so that the two differ by the math functions' last-ulp rounding only.
#pragma once
#include <cuda_runtime.h>

namespace bytelm::cuda {

__device__ inline float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }

__device__ inline float softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

__device__ inline float silu(float x) { return x * sigmoid(x); }

__device__ inline float silu_grad(float x) {
  float s = sigmoid(x);
  return s * (1.f + x * (1.f - s));
}

}  // namespace bytelm::cuda
