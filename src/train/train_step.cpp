#include "train/train_step.h"

#include <cstring>

#include "core/op_profile.h"
#ifdef BYTELM_WITH_CUDA
#include <cuda_runtime.h>

#include "core/device_buffer.h"
#include "core/pinned_buffer.h"
#endif

namespace bytelm {

#ifdef BYTELM_WITH_CUDA
struct TrainStep::Graph {
  PinnedBuffer<uint8_t> x, y;
  cudaGraphExec_t exec = nullptr;
  int calls = 0;
  // what the recording holds: the batch shape and the device addresses (allocation count) it was made with
  int B = 0, seq = 0;
  size_t allocations = 0;
  ~Graph() {
    if (exec) cudaGraphExecDestroy(exec);
  }
};
#else
struct TrainStep::Graph {};
#endif

TrainStep::TrainStep(Model<float>& model, AdamW& opt, bool tune_products) : model_(model), opt_(opt) {
  model_.tune_products(tune_products);
}
TrainStep::~TrainStep() = default;

StepResult TrainStep::run_direct(const uint8_t* x, const uint8_t* y, int B, int seq, const TrainConfig& t, int step,
                                 double lr) {
  model_.zero_grads();
  StepResult r;
  r.loss = model_.forward(x, y, B, seq, nullptr);
  r.extra_loss = model_.last_extra_loss();
  model_.backward();
  r.grad_norm = opt_.step(model_, t, step, lr);
  return r;
}

StepResult TrainStep::run(const uint8_t* x, const uint8_t* y, int B, int seq, const TrainConfig& t, int step,
                          double lr) {
#ifdef BYTELM_WITH_CUDA
  // op profiling times each op alone, which a replay cannot do
  if (model_.on_gpu() && !OpProfile::get().enabled) {
    if (!graph_) graph_ = std::make_unique<Graph>();
    Graph& g = *graph_;
    size_t n = (size_t)B * seq;
    g.x.resize(n);
    g.y.resize(n);
    std::memcpy(g.x.data(), x, n);
    std::memcpy(g.y.data(), y, n);
    if (g.calls++ == 0) return run_direct(g.x.data(), g.y.data(), B, seq, t, step, lr);  // sizes every buffer
    auto stream = (cudaStream_t)model_.compute_stream();
    if (!g.exec || g.B != B || g.seq != seq || g.allocations != device_allocations()) {
      if (g.exec) BYTELM_CUDA_CHECK(cudaGraphExecDestroy(g.exec));
      g.exec = nullptr;
      cudaGraph_t recorded = nullptr;
      BYTELM_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      try {
        run_direct(g.x.data(), g.y.data(), B, seq, t, step, lr);  // recorded, not run: returns NaNs
      } catch (...) {
        cudaStreamEndCapture(stream, &recorded);
        if (recorded) cudaGraphDestroy(recorded);
        throw;
      }
      BYTELM_CUDA_CHECK(cudaStreamEndCapture(stream, &recorded));
      cudaError_t err = cudaGraphInstantiate(&g.exec, recorded, 0);
      cudaGraphDestroy(recorded);
      BYTELM_CUDA_CHECK(err);
      g.B = B, g.seq = seq, g.allocations = device_allocations();
    }
    opt_.set_step(t, step, lr);
    BYTELM_CUDA_CHECK(cudaGraphLaunch(g.exec, stream));
    BYTELM_CUDA_CHECK(cudaStreamSynchronize(stream));
    return {model_.last_loss(), opt_.last_norm(), model_.last_extra_loss()};
  }
#endif
  return run_direct(x, y, B, seq, t, step, lr);
}

}  // namespace bytelm
