// What a model composed over an Ops backend (cpu_ops.h, cuda_ops.h) needs besides its layers: the backend, the
// device copies of the parameters and gradients, and the Model overrides that keep them in step with the host
// vectors params_/grads_. On the CPU params_/grads_ are the parameters themselves. On a GPU the kernels use the
// device copies w_ and g_, and the matrix products read their weights as A = Ops::Act<T> (bf16 on the GPU's fast
// path): a copy wa_, refreshed whenever the parameters change, where A is not T.
#pragma once
#include <cstddef>
#include <memory>
#include <type_traits>

#include "models/model.h"

namespace bytelm {

template <class T, class Ops>
class OpsModel : public Model<T> {
 protected:
  using A = typename Ops::template Act<T>;
  static constexpr bool kWeightCopy = !Ops::on_host && !std::is_same_v<A, T>;

  // ops_args go to the backend (CudaOps takes its GemmPrecision).
  template <class... OpsArgs>
  explicit OpsModel(OpsArgs... ops_args) : ops_(ops_args...) {}

  // Call once the parameters are allocated and initialised: makes the device copies.
  void place_params() {
    if constexpr (!Ops::on_host) {
      Ops::resize(g_, this->grads_.size());
      push_params();
    }
  }

 public:
  void push_params() override {
    if constexpr (!Ops::on_host) ops_.upload(w_, this->params_);
    if constexpr (kWeightCopy) ops_.convert(wa_, w_);
  }
  void pull_params() override {
    if constexpr (!Ops::on_host) ops_.download(this->params_, w_);
  }
  void pull_grads() override {
    if constexpr (!Ops::on_host) ops_.download(this->grads_, g_);
  }
  void zero_grads() override { ops_.zero(G(), this->grads_.size()); }
  T* compute_params() override { return const_cast<T*>(W()); }
  T* compute_grads() override { return G(); }
  T last_loss() const override {
    if constexpr (Ops::on_host) return this->last_loss_;
    else return ops_.last_mean_loss();
  }
  T last_extra_loss() const override { return T(ops_.last_extra_loss()); }
  void* compute_params_bf16() override {
    if constexpr (kWeightCopy) return wa_.data();
    else return nullptr;
  }
  bool on_gpu() const override { return !Ops::on_host; }
  // Every family over an Ops backend steps its streams in batches (Model's default would call make_stream back);
  // one stream is a batch of one.
  std::unique_ptr<ByteStreams<T>> make_streams(int B) const override = 0;
  std::unique_ptr<ByteStream<T>> make_stream() const override { return single_stream(make_streams(1)); }
  void tune_products(bool on) override {
    if constexpr (!Ops::on_host) ops_.tune_products(on);
  }
  void use_quantized_weights(const std::vector<std::pair<size_t, QuantizedMatrix>>& matrices,
                             QuantizedUse use) override {
    if constexpr (Ops::on_host && std::is_same_v<T, float>) ops_.keep_quantized(this->params_.data(), matrices, use);
  }
  void record_product_inputs(std::map<size_t, ProductInputs>* into) override {
    if constexpr (Ops::on_host && std::is_same_v<T, float>) {
      ops_.recording.clear();
      if (into)
        for (auto& [offset, inputs] : *into) ops_.recording[this->params_.data() + offset] = &inputs;
    }
  }
  void* compute_stream() override {
    if constexpr (Ops::on_host) return nullptr;
    else return (void*)ops_.stream();
  }

 protected:
  // The parameters where the kernels read them, as the matrix products read them, and the gradients.
  const T* W() const {
    if constexpr (Ops::on_host) return this->params_.data();
    else return w_.data();
  }
  const A* WA() const {
    if constexpr (kWeightCopy) return wa_.data();
    else return W();
  }
  T* G() {
    if constexpr (Ops::on_host) return this->grads_.data();
    else return g_.data();
  }

  mutable Ops ops_;  // GPU backends keep a stream, handles and scratch here
  typename Ops::template Buffer<T> w_, g_;  // device copies of the parameters and gradients (GPU backends)
  typename Ops::template Buffer<A> wa_;     // the parameters as the products read them (kWeightCopy)
};

// Element counts rounded up so that arrays carved one after another from one buffer each start 16-byte
// aligned, which the GPU kernels' wide loads need.
template <class A>
size_t aligned16_count(size_t n) {
  return (n * sizeof(A) + 15) / 16 * 16 / sizeof(A);
}

// The first n elements at p, and p moved past them (to the next 16-byte boundary).
template <class A>
A* take_aligned16(A*& p, size_t n) {
  A* front = p;
  p += aligned16_count<A>(n);
  return front;
}

}  // namespace bytelm
