// AdamW on the GPU (CUDA builds only): one pass over the flat parameter
// buffer, with the global gradient norm computed on the device in a fixed
// order (bit-reproducible) and applied as a clip without a host round trip.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/bf16.h"

namespace bytelm {

struct AdamWCudaArgs {
  float lr, weight_decay, beta1, beta2, bias1, bias2, clip;  // bias1/2 = 1 - beta^(step+1)
};

// Floats of scratch that adamw_step_cuda needs (partial sums + the norm).
size_t adamw_cuda_scratch();

// decay_mask[i] = 1 where weight decay applies. The last float of scratch receives
// the gradient norm before clipping. params_bf16, when given, receives the
// updated parameters rounded to bf16 (the copy a bf16 model's products read).
void adamw_step_cuda(float* params, bf16* params_bf16, const float* grads, float* m, float* v,
                     const uint8_t* decay_mask, size_t n, const AdamWCudaArgs* args, float* scratch,
                     cudaStream_t stream);

}  // namespace bytelm
