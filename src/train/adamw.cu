#include "layers/cuda_common.cuh"
#include "train/adamw_cuda.h"

namespace bytelm {

namespace {

constexpr int kNormBlocks = 512;  // fixed grid: the summation order never depends on n

__global__ void grad_norm_kernel(const float* partial, float* norm) {
  if (threadIdx.x != 0) return;
  double s = 0;
  for (int b = 0; b < kNormBlocks; b++) s += partial[b];
  *norm = (float)sqrt(s);
}

__global__ void adamw_kernel(float* p, bf16* pb, const float* g, float* m, float* v, const uint8_t* decay, size_t n,
                             const AdamWCudaArgs* args, const float* norm) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const AdamWCudaArgs a = *args;  // in device memory, so a recorded graph reads each step's values
  float scale = (a.clip > 0.f && *norm > a.clip) ? a.clip / *norm : 1.f;
  float gi = g[i] * scale;
  float mi = a.beta1 * m[i] + (1.f - a.beta1) * gi;
  float vi = a.beta2 * v[i] + (1.f - a.beta2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  float update = (mi / a.bias1) / (sqrtf(vi / a.bias2) + 1e-8f);
  float pi = p[i] - (a.lr * update + (decay[i] ? a.lr * a.weight_decay : 0.f) * p[i]);
  p[i] = pi;
  if (pb) pb[i] = __float2bfloat16(pi);
}

}  // namespace

size_t adamw_cuda_scratch() { return kNormBlocks + 1; }

void adamw_step_cuda(float* params, bf16* params_bf16, const float* grads, float* m, float* v,
                     const uint8_t* decay_mask, size_t n, const AdamWCudaArgs* args, float* scratch,
                     cudaStream_t stream) {
  float* norm = scratch + kNormBlocks;
  cuda::sum_partials_kernel<true><<<kNormBlocks, cuda::kThreads, 0, stream>>>(scratch, grads, n);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  grad_norm_kernel<<<1, 32, 0, stream>>>(scratch, norm);
  BYTELM_CUDA_CHECK(cudaGetLastError());
  adamw_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(params, params_bf16, grads, m, v, decay_mask, n,
                                                                     args, norm);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace bytelm
