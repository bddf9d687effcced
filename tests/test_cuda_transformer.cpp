// The transformer and hybrid families on the GPU: their kernels (RoPE, the MLP's LeakyReLU^2, soft-capping, SiLU
// gate, scaled add, SmearGate, hashed bigram, attention decode) against the CPU reference in fp32 and bf16, with
// odd sizes, and the bit-reproducibility of the backward reductions; the models against the CPU (loss and every
// gradient, tricks on and off), causality, streams against the parallel forward, graph-replayed steps, bf16 and
// tensor-core attention against fp32. Suites CudaTransformerLayers and CudaTransformerModel carry the ctest
// label `cuda` and skip without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "causality.h"
#include "cuda_model_testing.h"
#include "core/error.h"
#include "core/rng.h"
#include "model_testing.h"
#include "models/model.h"
#include "stream_parity.h"
#include "train/adamw.h"
#include "train/train_step.h"
#ifdef BYTELM_WITH_CUDA
#include "cuda_testing.h"
#include "layers/attention.h"
#include "layers/attention_cuda.h"
#include "layers/bigram.h"
#include "layers/bigram_cuda.h"
#include "layers/mlp.h"
#include "layers/mlp_cuda.h"
#include "layers/rope.h"
#include "layers/rope_cuda.h"
#include "layers/scaled_add.h"
#include "layers/scaled_add_cuda.h"
#include "layers/silu_gate.h"
#include "layers/silu_gate_cuda.h"
#include "layers/smear.h"
#include "layers/smear_cuda.h"
#include "layers/softcap.h"
#include "layers/softcap_cuda.h"
#endif

using namespace bytelm;
using namespace bytelm::testing;

#ifdef BYTELM_WITH_CUDA

namespace {

class CudaTransformerLayers : public CudaTest {
 protected:
  // Runs check(S, to_s, to_f, tol) for fp32 storage and for bf16 storage; `round` rounds the host inputs to bf16
  // in the second run, so the CPU reference sees the values the GPU does.
  template <class Check>
  void both_storages(Check check) {
    tag = "fp32 ";
    check(
        float(), [](const V& v) { return v; }, [](const std::vector<float>& v) { return v; }, [](V v) { return v; },
        kTol);
    tag = "bf16 ";
    check(bf16(), to_bf16, to_float, round_bf16, kBf16Tol);
  }
};

std::vector<uint8_t> bytes_from(Rng& rng, size_t n, int alphabet) {
  std::vector<uint8_t> x(n);
  for (auto& b : x) b = uint8_t(97 + rng.next_u64() % alphabet);  // few letters: buckets hit many times
  return x;
}

}  // namespace

TEST_F(CudaTransformerLayers, Rope) {
  both_storages([&](auto s_type, auto to_s, auto to_f, auto round, double tol) {
    using S = decltype(s_type);
    // q and k side by side in packed rows wider than them; an odd number of pairs; a stream's offset
    RopeShape s{2, 37, 6, 10, 3 * 3 * 10 + 2, 5};
    Rng rng(401);
    size_t n = (size_t)s.B * s.T * s.row_stride();
    V x = round(random_floats(n, rng)), ref = x, back = x;
    rope_forward(ref.data(), s);
    rope_backward(back.data(), s);
    Dev<S> d(to_s(x)), db(to_s(x));
    rope_forward_cuda(d.p, s, stream);
    rope_backward_cuda(db.p, s, stream);
    expect_close("forward", to_f(d.get()), ref, tol);
    expect_close("backward", to_f(db.get()), back, tol);
  });
}

TEST_F(CudaTransformerLayers, Mlp) {
  both_storages([&](auto s_type, auto to_s, auto to_f, auto round, double tol) {
    using S = decltype(s_type);
    int N = 37, d = 24, H = 96;
    float leak = 0.5f;
    Rng rng(402);
    V x = round(random_floats((size_t)N * d, rng)), W1 = round(random_floats((size_t)H * d, rng, 0.2)),
      W2 = round(random_floats((size_t)d * H, rng, 0.1)), dy = round(random_floats((size_t)N * d, rng)),
      dW1_0 = random_floats((size_t)H * d, rng), dW2_0 = random_floats((size_t)d * H, rng);
    V y(N * d), h(N * H), a(N * H), dx(N * d), dW1 = dW1_0, dW2 = dW2_0, scratch(N * H);
    mlp_forward(y.data(), h.data(), a.data(), x.data(), W1.data(), W2.data(), N, d, H, leak);
    mlp_backward(dx.data(), dW1.data(), dW2.data(), dy.data(), x.data(), h.data(), a.data(), W1.data(), W2.data(), N, d,
                 H, leak, scratch.data());
    Dev<S> x_d(to_s(x)), W1_d(to_s(W1)), W2_d(to_s(W2)), dy_d(to_s(dy)), y_d(N * d), h_d(N * H), a_d(N * H),
        dx_d(N * d), sc_d(N * H);
    Dev<float> dW1_d(dW1_0), dW2_d(dW2_0);
    mlp_forward_cuda(y_d.poison().p, h_d.poison().p, a_d.poison().p, x_d.p, W1_d.p, W2_d.p, N, d, H, leak, gemm(),
                     stream);
    mlp_backward_cuda(dx_d.poison().p, dW1_d.p, dW2_d.p, dy_d.p, x_d.p, h_d.p, a_d.p, W1_d.p, W2_d.p, N, d, H, leak,
                      sc_d.poison().p, gemm(), stream);
    expect_close("y", to_f(y_d.get()), y, tol);
    expect_close("a", to_f(a_d.get()), a, tol);
    expect_close("dx", to_f(dx_d.get()), dx, tol);
    expect_close("dW1", dW1_d.get(), dW1, tol);
    expect_close("dW2", dW2_d.get(), dW2, tol);
  });
}

TEST_F(CudaTransformerLayers, SoftcapAndSiluGate) {
  both_storages([&](auto s_type, auto to_s, auto to_f, auto round, double tol) {
    using S = decltype(s_type);
    size_t n = 1001;
    float cap = 3;
    Rng rng(403);
    V x = round(random_floats(n, rng, 5.0)), z = round(random_floats(n, rng, 2.0)), dy = round(random_floats(n, rng));
    V y(n), dx(n), g(n), dv(n), dz(n);
    softcap_forward(y.data(), x.data(), n, cap);
    softcap_backward(dx.data(), dy.data(), x.data(), n, cap);
    silu_gate_forward(g.data(), x.data(), z.data(), n);
    silu_gate_backward(dv.data(), dz.data(), dy.data(), x.data(), z.data(), n);
    Dev<S> x_d(to_s(x)), z_d(to_s(z)), dy_d(to_s(dy)), y_d(n), dx_d(n), g_d(n), dv_d(n), dz_d(n);
    softcap_forward_cuda(y_d.poison().p, x_d.p, n, cap, stream);
    softcap_backward_cuda(dx_d.poison().p, dy_d.p, x_d.p, n, cap, stream);
    silu_gate_forward_cuda(g_d.poison().p, x_d.p, z_d.p, n, stream);
    silu_gate_backward_cuda(dv_d.poison().p, dz_d.poison().p, dy_d.p, x_d.p, z_d.p, n, stream);
    expect_close("softcap y", to_f(y_d.get()), y, tol);
    expect_close("softcap dx", to_f(dx_d.get()), dx, tol);
    expect_close("silu_gate y", to_f(g_d.get()), g, tol);
    expect_close("silu_gate dv", to_f(dv_d.get()), dv, tol);
    expect_close("silu_gate dz", to_f(dz_d.get()), dz, tol);
    // soft-capping in place, as the model applies it to the logits' gradient
    softcap_backward_cuda(dy_d.p, dy_d.p, x_d.p, n, cap, stream);
    expect_close("softcap dx in place", to_f(dy_d.get()), dx, tol);
  });
}

// The scalar's gradient is a sum over all n products: the CPU's runs in index order, the GPU's over a fixed grid,
// both in fp32, so they differ by about sqrt(n) roundings: ~1e-6 relative at this n.
TEST_F(CudaTransformerLayers, ScaledAdd) {
  both_storages([&](auto s_type, auto to_s, auto to_f, auto round, double tol) {
    using S = decltype(s_type);
    size_t n = 4099;
    Rng rng(404);
    V x = round(random_floats(n, rng)), y0 = round(random_floats(n, rng)), dy = round(random_floats(n, rng)), w{0.7f},
      dw0{0.3f};
    V y = y0, dx(n), dw = dw0;
    scaled_add_forward(y.data(), x.data(), w.data(), n);
    scaled_add_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), n);
    Dev<S> x_d(to_s(x)), y_d(to_s(y0)), dy_d(to_s(dy)), dx_d(n);
    Dev<float> w_d(w), dw_d(dw0), part(scaled_add_backward_cuda_partials());
    scaled_add_forward_cuda(y_d.p, x_d.p, w_d.p, n, stream);
    scaled_add_backward_cuda(dx_d.poison().p, dw_d.p, dy_d.p, x_d.p, w_d.p, n, part.poison().p, stream);
    expect_close("y", to_f(y_d.get()), y, tol);
    expect_close("dx", to_f(dx_d.get()), dx, tol);
    expect_close("dw", dw_d.get(), dw, kTol);  // fp32 in both storages
  });
}

TEST_F(CudaTransformerLayers, Smear) {
  both_storages([&](auto s_type, auto to_s, auto to_f, auto round, double tol) {
    using S = decltype(s_type);
    // d not a multiple of the warp; rows of T = 1 (the streaming shape) inside the backward's 64-row blocks too
    for (int T : {37, 1}) {
      int B = 3, d = 45, k = 12;
      size_t n = (size_t)B * T * d;
      Rng rng(405 + T);
      V x = round(random_floats(n, rng)), prev = round(random_floats((size_t)B * d, rng)),
        dy = round(random_floats(n, rng)), w = random_floats(k, rng, 0.5), lambda{0.8f}, dw0 = random_floats(k, rng),
        dl0{0.2f};
      V y(n), gate((size_t)B * T), y_prev(n), gate_prev((size_t)B * T), dx(n), dw = dw0, dl = dl0;
      smear_forward(y.data(), gate.data(), x.data(), w.data(), lambda.data(), B, T, d, k, (const float*)nullptr);
      smear_forward(y_prev.data(), gate_prev.data(), x.data(), w.data(), lambda.data(), B, T, d, k, prev.data());
      smear_backward(dx.data(), dw.data(), dl.data(), dy.data(), x.data(), gate.data(), w.data(), lambda.data(), B, T,
                     d, k);
      Dev<S> x_d(to_s(x)), prev_d(to_s(prev)), dy_d(to_s(dy)), y_d(n), yp_d(n), dx_d(n);
      Dev<float> w_d(w), l_d(lambda), g_d((size_t)B * T), gp_d((size_t)B * T), dw_d(dw0), dl_d(dl0),
          part(smear_backward_cuda_partials(B, T, k));
      smear_forward_cuda(y_d.poison().p, g_d.poison().p, x_d.p, w_d.p, l_d.p, B, T, d, k, (const S*)nullptr, stream);
      smear_forward_cuda(yp_d.poison().p, gp_d.poison().p, x_d.p, w_d.p, l_d.p, B, T, d, k, prev_d.p, stream);
      smear_backward_cuda(dx_d.poison().p, dw_d.p, dl_d.p, dy_d.p, x_d.p, g_d.p, w_d.p, l_d.p, B, T, d, k,
                          part.poison().p, stream);
      std::string at = "T=" + std::to_string(T) + " ";
      expect_close(at + "y", to_f(y_d.get()), y, tol);
      expect_close(at + "gate", g_d.get(), gate, kTol);
      expect_close(at + "y after prev", to_f(yp_d.get()), y_prev, tol);
      expect_close(at + "gate after prev", gp_d.get(), gate_prev, kTol);
      expect_close(at + "dx", to_f(dx_d.get()), dx, tol);
      expect_close(at + "dw", dw_d.get(), dw, kTol);
      expect_close(at + "dlambda", dl_d.get(), dl, kTol);
    }
  });
}

// Few letters, so the 61 buckets each gather many positions; rows wider than the warp (45 columns).
TEST_F(CudaTransformerLayers, Bigram) {
  both_storages([&](auto s_type, auto to_s, auto to_f, auto round, double) {
    using S = decltype(s_type);
    int B = 3, T = 37, buckets = 61, dim = 45;
    size_t N = (size_t)B * T;
    Rng rng(406);
    std::vector<uint8_t> x = bytes_from(rng, N, 5), prev = bytes_from(rng, B, 5);
    V table = random_floats((size_t)buckets * dim, rng), de = round(random_floats(N * dim, rng)),
      dtable0 = random_floats((size_t)buckets * dim, rng);
    V e(N * dim), e_prev(N * dim), dtable = dtable0;
    bigram_forward(e.data(), x.data(), table.data(), B, T, buckets, dim, nullptr);
    bigram_forward(e_prev.data(), x.data(), table.data(), B, T, buckets, dim, prev.data());
    bigram_backward(dtable.data(), de.data(), x.data(), B, T, buckets, dim);
    Dev<uint8_t> x_d(x), prev_d(prev);
    Dev<float> table_d(table), dtable_d(dtable0);
    Dev<S> e_d(N * dim), ep_d(N * dim), de_d(to_s(de));
    Dev<char> work(bigram_backward_cuda_workspace_bytes(B, T, buckets));
    bigram_forward_cuda(e_d.poison().p, x_d.p, table_d.p, B, T, buckets, dim, nullptr, stream);
    bigram_forward_cuda(ep_d.poison().p, x_d.p, table_d.p, B, T, buckets, dim, prev_d.p, stream);
    bigram_backward_cuda(dtable_d.p, de_d.p, x_d.p, B, T, buckets, dim, work.poison().p, stream);
    expect_close("e", to_f(e_d.get()), round(e), kTol);  // a gather: exact up to the storage's rounding
    expect_close("e after prev", to_f(ep_d.get()), round(e_prev), kTol);
    expect_close("dtable", dtable_d.get(), dtable, kTol);
  });
}

// The streaming step against the CPU's, step after step past the ring's size (slots 5, 12 positions), so the
// caches wrap and the query sees the last `slots` positions only.
TEST_F(CudaTransformerLayers, AttentionDecode) {
  both_storages([&](auto s_type, auto to_s, auto to_f, auto round, double tol) {
    using S = decltype(s_type);
    int B = 2, H = 3, Dh = 20, slots = 5, stride = 3 * H * Dh + 4, D = H * Dh;
    float scale = 1 / std::sqrt(float(Dh));
    Rng rng(407);
    size_t cache = (size_t)B * slots * D;
    V k_cache(cache, 0.f), v_cache(cache, 0.f);
    Dev<S> kc_d(to_s(k_cache)), vc_d(to_s(v_cache)), o_d((size_t)B * D);
    Dev<float> scores(attention_decode_cuda_scratch(B, H, slots));
    for (int pos = 0; pos < 12; pos++) {
      V qkv = round(random_floats((size_t)B * stride, rng)), o((size_t)B * D);
      attention_decode(o.data(), k_cache.data(), v_cache.data(), qkv.data(), qkv.data() + D, qkv.data() + 2 * D, stride,
                       B, H, Dh, slots, pos, scale);
      Dev<S> qkv_d(to_s(qkv));
      attention_decode_cuda(o_d.poison().p, kc_d.p, vc_d.p, qkv_d.p, qkv_d.p + D, qkv_d.p + 2 * D, stride, B, H, Dh,
                            slots, pos, scale, scores.poison().p, stream);
      std::string at = "pos=" + std::to_string(pos) + " ";
      expect_close(at + "o", to_f(o_d.get()), o, tol);
      expect_close(at + "keys", to_f(kc_d.get()), k_cache, kTol);  // copies: exact
      expect_close(at + "values", to_f(vc_d.get()), v_cache, kTol);
    }
  });
}

// Two runs of each backward with a reduction (SmearGate, bigram, scaled add) give identical bits.
TEST_F(CudaTransformerLayers, BackwardIsBitReproducible) {
  Rng rng(408);
  int B = 8, T = 517, d = 200, k = 12, buckets = 4096, dim = 32;
  size_t N = (size_t)B * T, n = N * d;
  Dev<float> x(random_floats(n, rng)), dy(random_floats(n, rng)), w(random_floats(k, rng)), lambda(V{0.5f}),
      gate(random_floats(N, rng, 0.1, 0.5)), de(random_floats(N * dim, rng)),
      part_s(smear_backward_cuda_partials(B, T, k)), part_a(scaled_add_backward_cuda_partials());
  Dev<uint8_t> bytes(bytes_from(rng, N, 20));
  Dev<char> work(bigram_backward_cuda_workspace_bytes(B, T, buckets));
  auto run = [&] {
    Dev<float> dx(n), dw(V(k, 0.f)), dl(V{0.f}), dtable(V((size_t)buckets * dim, 0.f)), dx2(n), dscale(V{0.f});
    smear_backward_cuda(dx.p, dw.p, dl.p, dy.p, x.p, gate.p, w.p, lambda.p, B, T, d, k, part_s.p, stream);
    bigram_backward_cuda(dtable.p, de.p, bytes.p, B, T, buckets, dim, work.p, stream);
    scaled_add_backward_cuda(dx2.p, dscale.p, dy.p, x.p, lambda.p, n, part_a.p, stream);
    return std::vector<V>{dx.get(), dw.get(), dl.get(), dtable.get(), dx2.get(), dscale.get()};
  };
  EXPECT_TRUE(bit_equal(run(), run()));
}

#endif  // BYTELM_WITH_CUDA

namespace {

// Every trick on, small and odd: 4 heads of 8, 3 layers (one U-Net skip and a middle layer without), 61 bigram
// buckets of width 5, a cap low enough to bend the logits.
ModelConfig transformer_config() {
  ModelConfig c{"transformer", 32, 3, 1};
  c.head_dim = 8;
  c.bigram_buckets = 61;
  c.bigram_dim = 5;
  c.softcap = 3;
  c.context = 64;
  return c;
}

ModelConfig tricks_off() {
  ModelConfig c = transformer_config();
  c.rope = c.tie_embeddings = c.smear = c.unet = 0;
  c.softcap = 0;
  c.mlp_leak = 0;
  c.bigram_buckets = 0;
  return c;
}

ModelConfig hybrid_config(const std::string& layers, int conv_len) {
  ModelConfig c = transformer_config();
  c.arch = "hybrid";
  c.layers = (int)layers.size();
  c.hybrid_layers = layers;
  c.conv_len = conv_len;
  return c;
}

// The configs the model tests run: the hybrid's convolution at width 5 and, past the width of mamba's kernel, 40.
std::vector<std::pair<std::string, ModelConfig>> model_configs() {
  return {{"transformer", transformer_config()},
          {"transformer tricks off", tricks_off()},
          {"hybrid K=5", hybrid_config("sasa", 5)},
          {"hybrid K=40", hybrid_config("ssaa", 40)}};
}

}  // namespace

TEST(CudaTransformerModel, LossAndGradientsMatchCpu) {
  REQUIRE_GPU();
  for (auto& [name, c] : model_configs()) {
    auto cpu = make_model_on("cpu", c, 7);
    auto gpu = make_model_on("cuda-fp32", c, 7);
    perturb_params(*cpu, 3);  // the zero-initialised parts (SmearGate, bigram projection, conv output) off zero
    gpu->params() = cpu->params();
    gpu->push_params();
    expect_gpu_matches_cpu(*cpu, *gpu, 3, 67, 5, name);
  }
}

TEST(CudaTransformerModel, CausalOnGpu) {
  REQUIRE_GPU();
  for (auto& [name, c] : model_configs())
    for (const char* device : {"cuda-fp32", "cuda"}) {
      auto m = make_model_on(device, c, 5);
      perturb_params(*m, 4);
      Rng rng(9);
      expect_causal(*m, 33, rng, name + " " + device);
    }
}

// B streams stepped together on the GPU (KV caches in the activation type, convolution inputs in fp32) give the
// GPU's parallel forward: to fp32 accuracy in fp32, within bf16 rounding in bf16.
TEST(CudaTransformerModel, StreamsMatchParallelForward) {
  REQUIRE_GPU();
  for (auto& [name, c] : model_configs())
    for (const char* device : {"cuda-fp32", "cuda"}) {
      auto m = make_model_on(device, c, 9);
      perturb_params(*m, 6);
      Rng rng(14);
      double tol = std::string(device) == "cuda" ? 2e-2 : 1e-4;
      double e = stream_vs_forward_error(*m, 3, 37, rng);
      ::testing::Test::RecordProperty(name + " " + device, std::to_string(e));
      EXPECT_LT(e, tol) << name << " " << device;
    }
}

// bf16 storage and products (with the tensor-core attention at head_dim 64) and TF32 compute the fp32 function to
// their accuracy.
TEST(CudaTransformerModel, FastPathsCloseToFp32) {
  REQUIRE_GPU();
  ModelConfig t = transformer_config(), h = hybrid_config("sasa", 5);
  t.d = h.d = 128;
  t.head_dim = h.head_dim = 64;
  for (const ModelConfig& c : {t, h})
    for (const char* device : {"cuda-tf32", "cuda"}) {
      auto exact = make_model_on("cuda-fp32", c, 3);
      auto fast = make_model_on(device, c, 3);
      perturb_params(*exact, 2);
      fast->params() = exact->params();
      fast->push_params();
      expect_close_to_fp32(*exact, *fast, device, 4, 200, c.arch);
    }
}

// Graph-replayed training steps (train/train_step.h) equal direct ones to the bit, in bf16, for both families.
TEST(CudaTransformerModel, GraphStepsMatchDirectSteps) {
  REQUIRE_GPU();
  for (const ModelConfig& c : {transformer_config(), hybrid_config("sasa", 5)}) {
    auto replayed = make_model_on("cuda", c, 13), direct = make_model_on("cuda", c, 13);
    expect_graph_steps_match_direct(*replayed, *direct, 100, c.arch);
  }
}

TEST(CudaTransformerModel, NoGpuGivesAClearError) {
  if (have_gpu()) GTEST_SKIP() << "a GPU is present";
  for (const ModelConfig& c : {transformer_config(), hybrid_config("sa", 3)}) {
    try {
      make_model_on("cuda", c, 1);
      FAIL() << c.arch;
    } catch (const Error& e) {
#ifdef BYTELM_WITH_CUDA
      EXPECT_NE(std::string(e.what()).find("no usable CUDA device"), std::string::npos) << e.what();
#else
      EXPECT_NE(std::string(e.what()).find("no CUDA support"), std::string::npos) << e.what();
#endif
    }
  }
}
