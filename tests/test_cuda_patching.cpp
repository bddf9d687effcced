// The learned patchings on the GPU (suites CudaPatching, CudaPatchingModel; ctest label `cuda`, skipped without a
// device or a CUDA build): the soft and entropy kernels and the short diagonal scan against the CPU reference
// (fp32 ~1e-5, bf16 storage within kBf16Tol on bf16-rounded inputs), their backward passes bit-reproducible; and
// the soft and entropy models on cuda-fp32 against the CPU (loss, every gradient), causal, streaming as their
// parallel forward, and replayed as CUDA graphs to the bit.
#include <gtest/gtest.h>

#include "causality.h"
#include "cuda_model_testing.h"
#include "model_testing.h"
#include "stream_parity.h"
#include "models/model.h"

#ifdef BYTELM_WITH_CUDA

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cuda_testing.h"
#include "layers/diag_ssm.h"
#include "layers/diag_ssm_cuda.h"
#include "layers/patch.h"
#include "layers/patch_entropy.h"
#include "layers/patch_entropy_cuda.h"
#include "layers/patch_soft.h"
#include "layers/patch_soft_cuda.h"
#include "train/adamw.h"
#include "train/train_step.h"

using namespace bytelm;
using namespace bytelm::testing;

namespace {

class CudaPatching : public CudaTest {};

// Bigram rows of a random spread, so that entropies cover about 4..8 bits (as tests/test_ssm_model.cpp draws them).
V spread_bigram_table(Rng& rng) {
  V G(256 * 256);
  for (int a = 0; a < 256; a++) {
    double scale = 3 * rng.uniform() / kBigramLogitScale;
    for (int k = 0; k < 256; k++) G[a * 256 + k] = float(scale * rng.normal());
  }
  return G;
}

Bytes few_values(size_t n, Rng& rng, int values) {  // a few byte values: rows of the table read many times
  Bytes x(n);
  for (auto& b : x) b = uint8_t(rng.next_u64() % values);
  return x;
}

std::vector<int> get_ints(const DeviceBuffer<int>& b, size_t n) {
  std::vector<int> v(n);
  BYTELM_CUDA_CHECK(cudaDeviceSynchronize());
  BYTELM_CUDA_CHECK(cudaMemcpy(v.data(), b.data(), sizeof(int) * n, cudaMemcpyDeviceToHost));
  return v;
}

}  // namespace

// Many short sequences (the thread-a-channel path, T <= 64) and long ones (the chunked path, T > 64) against the
// CPU, including more sequences than a grid has rows (65535), with h0 and h_last; the backward run twice. The
// reference runs in double: dlam sums B T terms a channel, and a float reference's own rounding (about
// eps sqrt(B T), 1e-4 at 4M terms) would hide the kernels'; theirs is bounded the same way (the chunked path adds
// the batch up in one chain), so dlam gets that bound where it exceeds kTol. Decays stay away from 1 (lam ~ N(0, 1)),
// where the device's float a and the double reference's would part by ulp / (1 - a).
TEST_F(CudaPatching, DiagShortScan) {
  using D = std::vector<double>;
  auto dbl = [](const V& v) { return D(v.begin(), v.end()); };
  auto flt = [](const D& v) { return V(v.begin(), v.end()); };
  struct Case { int B, T, d; };
  for (Case k : {Case{37, 1, 48}, Case{300, 2, 40}, Case{5, 7, 33}, Case{9, 64, 20}, Case{70000, 2, 3},
                 Case{66000, 65, 2}}) {
    Rng rng(301 + k.B + k.T);
    int B = k.B, T = k.T, d = k.d;
    size_t n = (size_t)B * T * d;
    tag = "B=" + std::to_string(B) + " T=" + std::to_string(T) + " ";
    V u = random_floats(n, rng), lam = random_floats(d, rng), h0 = random_floats((size_t)B * d, rng);
    V dh = random_floats(n, rng), dlam0 = random_floats(d, rng);
    D ud = dbl(u), lamd = dbl(lam), h_ref(n), du_ref = dbl(dh), dlam_ref = dbl(dlam0), last_ref((size_t)B * d);
    diag_scan_forward(h_ref.data(), ud.data(), lamd.data(), B, T, d, dbl(h0).data());
    diag_scan_backward(du_ref.data(), dlam_ref.data(), ud.data(), h_ref.data(), lamd.data(), B, T, d);
    for (int b = 0; b < B; b++)
      for (int c = 0; c < d; c++) last_ref[(size_t)b * d + c] = h_ref[((size_t)b * T + T - 1) * d + c];
    double dlam_tol = std::max(kTol, 4 * 0x1p-24 * std::sqrt((double)B * T));
    Dev<float> u_d(u), lam_d(lam), h0_d(h0), h_d(n), last_d((size_t)B * d),
        part_d(diag_scan_backward_cuda_partials(B, T, d));
    diag_scan_forward_cuda(h_d.poison().p, u_d.p, lam_d.p, B, T, d, h0_d.p, last_d.poison().p, stream);
    expect_close("h", h_d.get(), flt(h_ref));
    expect_close("h_last", last_d.get(), flt(last_ref));
    std::vector<V> runs;
    for (int run = 0; run < 2; run++) {
      Dev<float> g_d(dh), dlam_d(dlam0);
      diag_scan_backward_cuda(g_d.p, dlam_d.p, u_d.p, h_d.p, lam_d.p, B, T, d, part_d.poison().p, stream);
      expect_close("du", g_d.get(), flt(du_ref));
      expect_close("dlam", dlam_d.get(), flt(dlam_ref), dlam_tol);
      runs.push_back(g_d.get());
      runs.push_back(dlam_d.get());
    }
    EXPECT_TRUE(bit_equal(runs[0], runs[2]) && bit_equal(runs[1], runs[3])) << tag << "backward not reproducible";
  }
}

// Soft pooling: odd widths, a trailing incomplete window, no complete window (T < P), several spans of the
// chunked scan, P = 1; from a given state (streaming) and from zero; fp32 and bf16 storage.
TEST_F(CudaPatching, Soft) {
  struct Case { int B, T, P, d; };
  for (Case k : {Case{2, 131, 3, 37}, Case{3, 300, 2, 64}, Case{1, 5, 8, 5}, Case{2, 17, 1, 33}}) {
    Rng rng(311 + k.T);
    int B = k.B, T = k.T, P = k.P, d = k.d, Np = patch_count(T, P), N = B * T;
    size_t n = (size_t)N * d, np = (size_t)B * Np * d;
    tag = "T=" + std::to_string(T) + " P=" + std::to_string(P) + " d=" + std::to_string(d) + " ";
    // scores about N(-log P, 1): keeps spread over (0, 1), some near either end
    V e = random_floats(n, rng), w = random_floats(d, rng, 1.0 / std::sqrt(d)), c{float(-std::log(P))};
    V dp = random_floats(np, rng), de0 = random_floats(n, rng), dw0 = random_floats(d, rng), dc0 = random_floats(1, rng);
    V state0 = random_floats((size_t)B * (d + 1), rng);
    for (int b = 0; b < B; b++) state0[(size_t)B * d + b] = 1.f + std::fabs(state0[(size_t)B * d + b]);  // z > 0

    for (bool bf : {false, true}) {
      V ee = bf ? round_bf16(e) : e, dpp = bf ? round_bf16(dp) : dp, dee = bf ? round_bf16(de0) : de0;
      double tol = bf ? kBf16Tol : kTol;
      std::string kind = bf ? "bf16 " : "";
      V p_ref(np), n_ref(n), z_ref(N), keep_ref(N), de_ref = dee, dw_ref = dw0, dc_ref = dc0;
      patch_soft_forward(p_ref.data(), n_ref.data(), z_ref.data(), keep_ref.data(), ee.data(), w.data(), c.data(), B,
                         T, P, d, (float*)nullptr);
      patch_soft_backward(de_ref.data(), dw_ref.data(), dc_ref.data(), dpp.data(), ee.data(), w.data(), n_ref.data(),
                          z_ref.data(), keep_ref.data(), B, T, P, d);
      V ps_ref(np), ns_ref(n), zs_ref(N), ks_ref(N), state_ref = state0;  // from a state, which it then receives
      patch_soft_forward(ps_ref.data(), ns_ref.data(), zs_ref.data(), ks_ref.data(), ee.data(), w.data(), c.data(), B,
                         T, P, d, state_ref.data());

      Dev<float> w_d(w), c_d(c), z_d(N), keep_d(N), scratch_d(B), state_d(state0), zs_d(N), ks_d(N),
          part_d(patch_soft_backward_cuda_partials(B, T, P, d));
      auto run = [&](auto tag_type) {
        using A = decltype(tag_type);
        auto store = [&](const V& v) { if constexpr (std::is_same_v<A, float>) return v; else return to_bf16(v); };
        auto load = [&](const std::vector<A>& v) { if constexpr (std::is_same_v<A, float>) return v; else return to_float(v); };
        Dev<A> e_d(store(ee)), dp_d(store(dpp)), p_d(np), ps_d(np);
        Dev<float> n_d(n), ns_d(n);
        patch_soft_forward_cuda(p_d.poison().p, n_d.poison().p, z_d.poison().p, keep_d.poison().p, e_d.p, w_d.p, c_d.p,
                                B, T, P, d, (float*)nullptr, scratch_d.p, stream);
        expect_close(kind + "p", load(p_d.get()), p_ref, tol);
        expect_close(kind + "n", n_d.get(), n_ref, tol);
        expect_close(kind + "z", z_d.get(), z_ref, tol);
        expect_close(kind + "keep", keep_d.get(), keep_ref, tol);
        std::vector<V> runs;
        for (int r = 0; r < 2; r++) {
          Dev<A> de_d(store(dee));
          Dev<float> dw_d(dw0), dc_d(dc0);
          patch_soft_backward_cuda(de_d.p, dw_d.p, dc_d.p, dp_d.p, e_d.p, w_d.p, n_d.p, z_d.p, keep_d.p, B, T, P, d,
                                   part_d.poison().p, stream);
          expect_close(kind + "de", load(de_d.get()), de_ref, tol);
          expect_close(kind + "dw", dw_d.get(), dw_ref, tol);
          expect_close(kind + "dc", dc_d.get(), dc_ref, tol);
          runs.push_back(load(de_d.get()));
          runs.push_back(dw_d.get());
          runs.push_back(dc_d.get());
        }
        EXPECT_TRUE(bit_equal(runs[0], runs[3]) && bit_equal(runs[1], runs[4]) && bit_equal(runs[2], runs[5]))
            << tag << kind << "backward not reproducible";
        patch_soft_forward_cuda(ps_d.poison().p, ns_d.poison().p, zs_d.poison().p, ks_d.poison().p, e_d.p, w_d.p,
                                c_d.p, B, T, P, d, state_d.p, scratch_d.p, stream);
        expect_close(kind + "p (from a state)", load(ps_d.get()), ps_ref, tol);
        expect_close(kind + "z (from a state)", zs_d.get(), zs_ref, tol);
        expect_close(kind + "state after", state_d.get(), state_ref, tol);
      };
      if (bf) run(bf16{}); else run(float{});
      BYTELM_CUDA_CHECK(cudaMemcpy(state_d.p, state0.data(), sizeof(float) * state0.size(), cudaMemcpyHostToDevice));
    }
  }
}

// Entropy patching: the same patches as the host (exactly), pooling and broadcast and their backward, the bigram
// table's loss and gradient, and the streams' step, byte after byte, against the host's.
TEST_F(CudaPatching, Entropy) {
  struct Case { int B, T, P, d; double threshold; };
  for (Case k : {Case{3, 131, 2, 37, 6.5}, Case{2, 7, 3, 64, 6.5}, Case{4, 1000, 1, 48, 6.0}, Case{2, 50, 4, 8, 7.9}}) {
    Rng rng(321 + k.T);
    int B = k.B, T = k.T, P = k.P, d = k.d, N = B * T;
    tag = "T=" + std::to_string(T) + " P=" + std::to_string(P) + " ";
    V G = spread_bigram_table(rng);
    Bytes x = few_values(N, rng, 16), y = few_values(N, rng, 256);
    EntropyPatches s = entropy_patches(G.data(), x.data(), B, T, P, k.threshold);
    size_t n = (size_t)N * d, np = (size_t)B * s.slots * d;
    V e = random_floats(n, rng), start = random_floats(d, rng), dout = random_floats(n, rng), dp_in = random_floats(np, rng);
    V de0 = random_floats(n, rng), dstart0 = random_floats(d, rng), dG0 = random_floats(256 * 256, rng);
    V p_ref(np), out_ref(n), dp_ref(np), dstart_ref = dstart0, de_ref(n), de_pool_ref = de0, loss_ref(N), dG_ref = dG0;
    patch_entropy_pool_forward(p_ref.data(), e.data(), s, d);
    patch_entropy_broadcast_forward(out_ref.data(), p_ref.data(), start.data(), e.data(), s, d);
    patch_entropy_broadcast_backward(dp_ref.data(), dstart_ref.data(), de_ref.data(), dout.data(), s, d);
    patch_entropy_pool_backward(de_pool_ref.data(), dp_in.data(), s, d);
    bigram_loss_forward(loss_ref.data(), G.data(), x.data(), y.data(), N);
    bigram_loss_backward(dG_ref.data(), G.data(), x.data(), y.data(), N, 1.f / N);

    Dev<uint8_t> x_d(x), y_d(y);
    Dev<float> G_d(G), e_d(e), start_d(start), dout_d(dout), dp_in_d(dp_in), p_d(np), out_d(n), loss_d(N),
        scratch_d(kBigramRowsScratch), work_d(bigram_loss_backward_cuda_workspace_bytes() / sizeof(float));
    EntropyPatchesCuda sd;
    entropy_patches_cuda(sd, G_d.p, x_d.p, B, T, P, k.threshold, scratch_d.p, stream);
    ASSERT_EQ(sd.slots, s.slots);
    EXPECT_EQ(get_ints(sd.first, s.first.size()), s.first) << tag;
    EXPECT_EQ(get_ints(sd.length, s.length.size()), s.length) << tag;
    EXPECT_EQ(get_ints(sd.source, s.source.size()), s.source) << tag;
    patch_entropy_pool_forward_cuda(p_d.poison().p, e_d.p, sd, d, stream);
    patch_entropy_broadcast_forward_cuda(out_d.poison().p, p_d.p, start_d.p, e_d.p, sd, d, stream);
    expect_close("p", p_d.get(), p_ref);
    expect_close("out", out_d.get(), out_ref);
    bigram_loss_forward_cuda(loss_d.poison().p, G_d.p, x_d.p, y_d.p, N, scratch_d.p, stream);
    expect_close("bigram loss", loss_d.get(), loss_ref);
    std::vector<V> runs;
    for (int r = 0; r < 2; r++) {
      Dev<float> dp_d(np), dstart_d(dstart0), de_d(n), de_pool_d(de0), dG_d(dG0);
      patch_entropy_broadcast_backward_cuda(dp_d.poison().p, dstart_d.p, de_d.poison().p, dout_d.p, sd, d, stream);
      patch_entropy_pool_backward_cuda(de_pool_d.p, dp_in_d.p, sd, d, stream);
      bigram_loss_backward_cuda(dG_d.p, G_d.p, x_d.p, y_d.p, N, 1.f / N, work_d.p, stream);
      expect_close("dp", dp_d.get(), dp_ref);
      expect_close("dstart", dstart_d.get(), dstart_ref);
      expect_close("de (broadcast)", de_d.get(), de_ref);
      expect_close("de (pool)", de_pool_d.get(), de_pool_ref);
      expect_close("dG", dG_d.get(), dG_ref);
      for (V v : {dp_d.get(), dstart_d.get(), de_pool_d.get(), dG_d.get()}) runs.push_back(v);
    }
    for (int i = 0; i < 4; i++) EXPECT_TRUE(bit_equal(runs[i], runs[4 + i])) << tag << "backward " << i << " differs";

    // The streams: B of them, byte t of every row a step.
    V sum_ref((size_t)B * d, 0.f), patch_ref((size_t)B * d, 0.f), e_col((size_t)B * d);
    std::vector<int> closes_ref(B, 0), length_ref(B, 0), source_ref(B, -1);
    EntropyPatchesCuda one;
    entropy_stream_patches_cuda(one, B, stream);
    Dev<float> sum_d(sum_ref), patch_d(patch_ref), e_col_d((size_t)B * d);
    Dev<int> closes_d(closes_ref), length_d(length_ref);
    Dev<uint8_t> x_col_d(B);
    Bytes x_col(B);
    for (int t = 0; t < T; t++) {
      for (int b = 0; b < B; b++) {
        x_col[b] = x[(size_t)b * T + t];
        for (int c = 0; c < d; c++) e_col[(size_t)b * d + c] = e[((size_t)b * T + t) * d + c];
      }
      patch_entropy_step(patch_ref.data(), closes_ref.data(), sum_ref.data(), length_ref.data(), source_ref.data(),
                         e_col.data(), x_col.data(), G.data(), B, P, d, k.threshold);
      BYTELM_CUDA_CHECK(cudaMemcpy(x_col_d.p, x_col.data(), B, cudaMemcpyHostToDevice));
      BYTELM_CUDA_CHECK(cudaMemcpy(e_col_d.p, e_col.data(), sizeof(float) * e_col.size(), cudaMemcpyHostToDevice));
      patch_entropy_step_cuda(patch_d.p, closes_d.p, sum_d.p, length_d.p, one.source.data(), e_col_d.p, x_col_d.p,
                              G_d.p, B, P, d, k.threshold, stream);
      ASSERT_EQ(closes_d.get(), closes_ref) << tag << "t=" << t;
      ASSERT_EQ(length_d.get(), length_ref) << tag << "t=" << t;
      ASSERT_EQ(get_ints(one.source, B), source_ref) << tag << "t=" << t;
    }
    expect_close("stream patch", patch_d.get(), patch_ref);
    expect_close("stream sum", sum_d.get(), sum_ref);
  }
}

namespace {

constexpr double kEntropyThreshold = 6.5;  // about half the bytes of the spread tables exceed it

// A model of the learned patchings with its patching parameters drawn (tests/test_ssm_model.cpp's make_ssm), the
// other parameters off their init so LayerNorm weights, D and so on are generic.
std::unique_ptr<Model<float>> patching_model(const std::string& device, ModelConfig c, uint64_t seed) {
  auto m = make_model_on(device, c, seed);
  Rng rng(seed);
  for (const ParamInfo& p : m->param_info()) {
    float* w = m->params().data() + p.offset;
    if (p.name == "patch.boundary.weight" || p.name == "patch.boundary.bias")
      for (size_t i = 0; i < p.size; i++) w[i] = float(rng.normal());
    else if (p.name == "patch.bigram.weight")
      for (int a = 0; a < 256; a++) {
        double scale = 3 * rng.uniform() / kBigramLogitScale;
        for (int k = 0; k < 256; k++) w[a * 256 + k] = float(scale * rng.normal());
      }
    else
      for (size_t i = 0; i < p.size; i++) w[i] += 0.05f * float(rng.normal());
  }
  m->push_params();
  return m;
}

}  // namespace

// Loss, every row and every gradient (the boundary score's and the bigram table's included) as on the CPU, in fp32.
TEST(CudaPatchingModel, SoftAndEntropyMatchCpu) {
  REQUIRE_GPU();
  for (const char* patching : {"soft", "entropy"})
    for (int P : {1, 2, 3}) {
      ModelConfig c{"ssm", 40, 2, P, patching, kEntropyThreshold};
      std::string what = std::string(patching) + " P=" + std::to_string(P);
      auto cpu = patching_model("cpu", c, 17);
      auto gpu = make_model_on("cuda-fp32", c, 1);
      gpu->params() = cpu->params();
      gpu->push_params();
      expect_gpu_matches_cpu(*cpu, *gpu, 3, 200, 4, what);
    }
}

// Causal on the GPU; the GPU's streams give its parallel forward (fp32: 1e-4; bf16: 2e-2, as for mean pooling).
TEST(CudaPatchingModel, SoftAndEntropyCausalAndStreaming) {
  REQUIRE_GPU();
  for (const char* patching : {"soft", "entropy"})
    for (int P : {1, 2, 3}) {
      std::string what = std::string(patching) + " P=" + std::to_string(P);
      ModelConfig c{"ssm", 32, 2, P, patching, kEntropyThreshold};
      Rng rng(9);
      auto m = patching_model("cuda-fp32", c, 5);
      for (int T : {7, 33}) bytelm::testing::expect_causal(*m, T, rng, "cuda " + what + " T=" + std::to_string(T));
      for (const char* device : {"cuda-fp32", "cuda"}) {
        auto s = patching_model(device, c, 9);
        double e = bytelm::testing::stream_vs_forward_error(*s, 5, 37, rng);
        ::testing::Test::RecordProperty(std::string(device) + " " + what, std::to_string(e));
        EXPECT_LT(e, std::string(device) == "cuda" ? 2e-2 : 1e-4) << device << " " << what;
      }
    }
}

// Training steps replayed from a CUDA graph equal direct ones to the bit (the entropy model's loss adds the bigram
// table's, summed on the device, which a graph must replay too), in bf16.
TEST(CudaPatchingModel, GraphStepsMatchDirectSteps) {
  REQUIRE_GPU();
  for (const char* patching : {"soft", "entropy"}) {
    ModelConfig c{"ssm", 64, 2, 2, patching, kEntropyThreshold};
    auto replayed = patching_model("cuda", c, 13), direct = patching_model("cuda", c, 13);
    expect_graph_steps_match_direct(*replayed, *direct, 64, patching);
  }
}

#endif  // BYTELM_WITH_CUDA
