#include "infer/calibrate.h"

#include "core/error.h"
#include "train/checkpoint.h"

namespace bytelm {

std::map<size_t, ProductInputs> gather_product_inputs(Model<float>& model, const uint8_t* data, size_t n, int seq,
                                                      int batch, const ScoreProgress& progress) {
  if (model.on_gpu()) throw Error("calibration runs on the CPU: load the checkpoint with --device cpu");
  std::map<size_t, ProductInputs> inputs;
  for (const ParamInfo& p : model.param_info()) {
    if (!is_quantized_weight(p)) continue;
    ProductInputs& in = inputs[p.offset];
    in.cols = p.shape.back();
    in.rows = (int64_t)p.size / in.cols;
    in.gram.assign((size_t)(in.cols * in.cols), 0.0);
  }
  model.record_product_inputs(&inputs);
  try {
    score_bytes(model, data, n, seq, seq, batch, progress);
  } catch (...) {
    model.record_product_inputs(nullptr);
    throw;
  }
  model.record_product_inputs(nullptr);
  return inputs;
}

}  // namespace bytelm
