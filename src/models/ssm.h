// The `ssm` family: diagonal SSM blocks at patch rate with a byte residual.
//   e = Embed(x); p = pool every P bytes (complete patches only)
//   L blocks at patch rate: p += DiagSSM(LN(p)); p += SwiGLU(LN(p))
//   up[t] = p[k(t)] (or a learned start vector) + e[t], k(t) = latest patch ending at or before t
//   logits = Head(LN(up))
// config.patching chooses the pool and its reading back: mean; attn (layers/patch_attn.h); local, the mean and
// then byte-rate blocks over each patch's bytes before the head (layers/patch_local.h); soft, learned soft
// boundaries (layers/patch_soft.h); entropy, variable-length patches closed where a bigram table is unsure
// (layers/patch_entropy.h); none, the mean at patch 1.
#pragma once
#include <string>

#include "models/model.h"

namespace bytelm {

template <class T>
std::unique_ptr<Model<T>> make_ssm_model(const ModelConfig& config, uint64_t seed);
int64_t ssm_param_count(const ModelConfig& config);
// The blocks that run at byte rate (patching local's), besides config.layers at patch rate.
int ssm_byte_rate_blocks(const ModelConfig& config);
#ifdef BYTELM_WITH_CUDA
// gemm: "bf16", "tf32" or "fp32" (see GemmPrecision in cuda_ops.h).
std::unique_ptr<Model<float>> make_ssm_model_cuda(const ModelConfig& config, uint64_t seed, const std::string& gemm);
#endif

}  // namespace bytelm
