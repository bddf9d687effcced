// What every model family offers the trainer, the evaluator and the sampler:
// a flat parameter buffer described by a table of named tensors, a batched
// forward/backward over byte windows, and an O(1)-state byte stream.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/quantize.h"

namespace bytelm {

struct ModelConfig {
  std::string arch = "ssm";  // the family: "ssm", "mamba", "transformer" or "hybrid"
  int d = 256;
  int layers = 4;
  int patch = 2;  // bytes a patch (ssm); the mamba family reads every byte and takes 1 only
  // How the ssm family pools a patch's P byte embeddings: "mean"; "attn", a softmax over the P bytes against a
  // learned query (layers/patch_attn.h); "none", every byte its own patch (patch must be 1); "local", the mean
  // and a byte-rate decoder over each patch's bytes (layers/patch_local.h); "soft", learned soft boundaries
  // (layers/patch_soft.h); "entropy", patches of P to 4P bytes that close where a bigram model's entropy of the
  // next byte exceeds entropy_threshold bits (layers/patch_entropy.h).
  std::string patching = "mean";
  double entropy_threshold = 4.0;
  // The transformer and hybrid families (models/transformer.h). Each trick is on by default; one key turns it off.
  int head_dim = 64;          // attention head width Dh; heads = d / head_dim
  int context = 2048;         // positions a stream's KV cache keeps; a longer stream slides (models/transformer.h)
  int rope = 1;               // rotary position embeddings on q and k
  int tie_embeddings = 1;     // the head is the byte embedding, transposed
  double softcap = 30;        // logits = softcap * tanh(logits / softcap); 0 = off
  double mlp_leak = 0.5;      // MLP activation leaky_relu(h, mlp_leak)^2; 0 = ReLU^2
  int smear = 1;              // SmearGate on the input embeddings
  int bigram_buckets = 4096;  // rows of the hashed byte-bigram embedding; 0 = off
  int bigram_dim = 32;        // its width, projected to d
  int unet = 1;               // U-Net skips from the first half of the layers to the second
  std::string hybrid_layers = "";  // hybrid: a letter a layer, bottom first: 'a' attention, 's' S4D-Lin long convolution
  int conv_len = 256;         // hybrid: the long convolution's kernel length K
  int hidden() const { return 4 * d / 3; }  // SwiGLU hidden width
};

// Each tensor starts at a multiple of this many elements of the flat parameter buffer (zeros between, never
// read): a GPU matrix product reads its weight in place, and cuBLASLt takes its fast kernels only for 16-byte
// aligned operands. One odd-sized tensor before them (the transformer's smear.lambda, [1]) had every later
// weight misaligned and the products at ~80 TFLOP/s instead of ~500 (H100, e5345ea).
constexpr size_t kParamAlign = 64;

struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;  // into the flat parameter buffer, a multiple of kParamAlign
  size_t size = 0;
  bool decay = false;  // weight decay applies to matrices only
};

// Feeds one byte at a time; `logits` [256] predict the next byte.
template <class T>
struct ByteStream {
  virtual ~ByteStream() = default;
  virtual void step(uint8_t byte, T* logits) = 0;
};

// B independent streams fed together, one byte each a step: bytes [B] in, logits [B, 256] out (host memory),
// the work on the model's device.
template <class T>
struct ByteStreams {
  virtual ~ByteStreams() = default;
  virtual void step(const uint8_t* bytes, T* logits) = 0;
};

// A batch of one stream as a ByteStream: make_stream() for the families whose streams step batched.
template <class T>
std::unique_ptr<ByteStream<T>> single_stream(std::unique_ptr<ByteStreams<T>> streams) {
  struct One final : ByteStream<T> {
    std::unique_ptr<ByteStreams<T>> streams;
    void step(uint8_t byte, T* logits) override { streams->step(&byte, logits); }
  };
  auto one = std::make_unique<One>();
  one->streams = std::move(streams);
  return one;
}

template <class T>
class Model {
 public:
  virtual ~Model() = default;
  const ModelConfig& config() const { return config_; }
  const std::vector<ParamInfo>& param_info() const { return info_; }
  // The number of parameters: the tensors' sizes, without the alignment gaps of the flat buffer params().
  int64_t param_count() const {
    int64_t n = 0;
    for (const ParamInfo& p : info_) n += (int64_t)p.size;
    return n;
  }
  std::vector<T>& params() { return params_; }
  const std::vector<T>& params() const { return params_; }
  std::vector<T>& grads() { return grads_; }

  // x, y: [B, T] inputs and next-byte targets. Returns the mean loss in nats;
  // row_loss [B*T], if given, receives every position's loss. Keeps what the
  // backward needs.
  virtual T forward(const uint8_t* x, const uint8_t* y, int B, int seq, T* row_loss) = 0;
  // grads += d(mean loss of the last forward)/d(params).
  virtual void backward() = 0;
  virtual std::unique_ptr<ByteStream<T>> make_stream() const = 0;
  // B streams at once. By default B single streams one after the other; a family whose layers take a batch
  // (ssm, on the CPU and the GPU) steps them together.
  virtual std::unique_ptr<ByteStreams<T>> make_streams(int B) const {
    struct OneByOne final : ByteStreams<T> {
      std::vector<std::unique_ptr<ByteStream<T>>> streams;
      void step(const uint8_t* bytes, T* logits) override {
        for (size_t b = 0; b < streams.size(); b++) streams[b]->step(bytes[b], logits + 256 * b);
      }
    };
    auto s = std::make_unique<OneByOne>();
    for (int b = 0; b < B; b++) s->streams.push_back(make_stream());
    return s;
  }

  // Where the kernels read parameters and write gradients: params()/grads()
  // themselves for CPU models. A GPU model computes on device copies:
  // push_params() refreshes them from params(), pull_params()/pull_grads()
  // copy them back (e.g. for checkpoints and tests).
  virtual bool on_gpu() const { return false; }
  virtual void push_params() {}
  virtual void pull_params() {}
  virtual void pull_grads() {}
  virtual void zero_grads() { std::fill(grads_.begin(), grads_.end(), T(0)); }
  virtual T* compute_params() { return params_.data(); }
  virtual T* compute_grads() { return grads_.data(); }
  // A GPU model whose matrix products read bf16 weights: its device bf16 copy of compute_params(), which
  // whatever updates those parameters on the device rewrites in the same pass (AdamW does); else null.
  virtual void* compute_params_bf16() { return nullptr; }
  // The mean loss of the last forward: what forward returned, or for a GPU forward recorded into a CUDA
  // graph (which returns NaN), the value its last replay left (see train/train_step.h).
  virtual T last_loss() const { return last_loss_; }
  // The part of last_loss() that is not the bytes' cross-entropy: an auxiliary loss that the objective adds
  // (entropy patching's bigram table), 0 in families without one. Training logs report the bytes' part.
  virtual T last_extra_loss() const { return T(0); }
  virtual void* compute_stream() { return nullptr; }  // the cudaStream_t its kernels run on (GPU models)
  // GPU models: choose each matrix product's kernel by timing candidates (GemmLt::tune in layers/linear_cuda.h);
  // train --tune-products turns it on. Off, the kernels, and so the results to the bit, repeat across runs.
  virtual void tune_products(bool) {}
  // A quantized checkpoint's weight matrices (layers/quantize.h), by their offset in params(), which hold their
  // dequantized values and must not change after this call (load_checkpoint does both). The CPU backend's products
  // of a few rows (the streams: generate, compress) read them as 8-bit codes where that pays (cpu_ops.h), or
  // always; other backends ignore them.
  virtual void use_quantized_weights(const std::vector<std::pair<size_t, QuantizedMatrix>>&, QuantizedUse) {}
  // Calibration (quantize --calib, GPTQ): while `into` is set, the CPU backend adds the input rows of every product
  // that reads a matrix of `into` (by its offset in params(); rows, cols and a zero gram set) to its entry; null
  // stops it. Other backends record nothing.
  virtual void record_product_inputs(std::map<size_t, ProductInputs>*) {}

 protected:
  // Appends a tensor to the table and returns its offset; call before allocate(). Weight decay applies to
  // matrices unless `decay` says otherwise.
  size_t add_param(const std::string& name, std::vector<int64_t> shape) {
    return add_param(name, shape, shape.size() == 2);
  }
  size_t add_param(const std::string& name, std::vector<int64_t> shape, bool decay) {
    next_offset_ = (next_offset_ + kParamAlign - 1) / kParamAlign * kParamAlign;
    ParamInfo p{name, shape, next_offset_, 1, decay};
    for (int64_t s : shape) p.size *= (size_t)s;
    next_offset_ += p.size;
    info_.push_back(p);
    return p.offset;
  }
  void allocate() {
    params_.assign(next_offset_, T(0));
    grads_.assign(next_offset_, T(0));
  }
  // Initialisers for the families' init(): n parameters from `off` drawn from N(0, std^2), or set to v.
  template <class R>
  void init_normal(R& rng, size_t off, size_t n, double std) {
    for (size_t i = 0; i < n; i++) params_[off + i] = T(rng.normal() * std);
  }
  void init_fill(size_t off, size_t n, double v) { std::fill(params_.begin() + off, params_.begin() + off + n, T(v)); }

  ModelConfig config_;
  T last_loss_ = T(NAN);
  std::vector<ParamInfo> info_;
  std::vector<T> params_, grads_;
  size_t next_offset_ = 0;
};

// Whether make_model builds the family `arch` (config.arch), and the families it builds as a list for
// messages ("ssm, mamba").
bool is_known_architecture(const std::string& arch);
std::string known_architectures();

// Builds a freshly initialised model of config.arch (Error for an unknown arch or bad sizes).
template <class T>
std::unique_ptr<Model<T>> make_model(const ModelConfig& config, uint64_t seed);
// The same on a device: "cpu"; "cuda" (bf16 activations and matrix products with fp32 accumulation; fp32
// parameters, gradients and optimizer state); "cuda-tf32" (fp32 storage, TF32 products); "cuda-fp32" (true
// fp32 throughout, for parity with the CPU). Error where this build or machine has no CUDA.
std::unique_ptr<Model<float>> make_model_on(const std::string& device, const ModelConfig& config, uint64_t seed);

int64_t param_count(const ModelConfig& config);

}  // namespace bytelm
