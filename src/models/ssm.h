// The `ssm` family: diagonal SSM blocks at patch rate with a byte residual.
//   e = Embed(x); p = mean-pool every P bytes (complete patches only)
//   L blocks at patch rate: p += DiagSSM(LN(p)); p += SwiGLU(LN(p))
//   up[t] = p[k(t)] (or a learned start vector) + e[t], k(t) = latest patch ending at or before t
//   logits = Head(LN(up))
#pragma once
#include <string>

#include "models/model.h"

namespace bytelm {

template <class T>
std::unique_ptr<Model<T>> make_ssm_model(const ModelConfig& config, uint64_t seed);
#ifdef BYTELM_WITH_CUDA
// gemm: "bf16", "tf32" or "fp32" (see GemmPrecision in cuda_ops.h).
std::unique_ptr<Model<float>> make_ssm_model_cuda(const ModelConfig& config, uint64_t seed, const std::string& gemm);
#endif

}  // namespace bytelm
