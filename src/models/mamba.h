// The `mamba` family: Mamba's selective SSM on raw bytes (MambaByte), one byte a step, no patching.
//   r = Embed(x)
//   L blocks:  n = LN(r);  u = SiLU(CausalConv(n W_x^T));  r += Scan(u, dt, B, C; gate n W_z^T) W_out^T
//              where (dt_low, B, C) = u W_xproj^T and dt = dt_low W_dt^T
//   logits = LN(r) E^T  (the head is the embedding, transposed)
// One composition over two backends, as the ssm family: the CPU reference (fp32 for training, fp64 for
// gradient checks) and the GPU (CudaOps: bf16 or fp32 activations, fp32 parameters and scan state).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "models/model.h"

namespace bytelm {

// The family's fixed shape choices, MambaByte's (which are Mamba's): the inner width is expand = 2 times
// d, the state N = 16 a channel, the convolution 4 bytes wide, the step-size projection ceil(d/16) wide.
struct MambaDims {
  int d, inner, state, conv, dt_rank;
  explicit MambaDims(const ModelConfig& c) : d(c.d), inner(2 * c.d), state(16), conv(4), dt_rank((c.d + 15) / 16) {}
};

template <class T>
std::unique_ptr<Model<T>> make_mamba_model(const ModelConfig& config, uint64_t seed);
#ifdef BYTELM_WITH_CUDA
// gemm: "bf16", "tf32" or "fp32" (see GemmPrecision in cuda_ops.h).
std::unique_ptr<Model<float>> make_mamba_model_cuda(const ModelConfig& config, uint64_t seed,
                                                    const std::string& gemm);
#endif

int64_t mamba_param_count(const ModelConfig& config);

}  // namespace bytelm
