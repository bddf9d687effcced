// Every layer's backward against central finite differences, in double.
// Each loss is a random projection sum(R * output), so dy = R.
#include <gtest/gtest.h>

#include <set>

#include "gradcheck.h"
#include "layers/attention.h"
#include "layers/cross_entropy.h"
#include "layers/diag_ssm.h"
#include "layers/embedding.h"
#include "layers/layernorm.h"
#include "layers/linear.h"
#include "layers/patch.h"
#include "layers/patch_attn.h"
#include "layers/patch_entropy.h"
#include "layers/patch_soft.h"
#include "layers/swiglu.h"

using namespace bytelm;
using namespace bytelm::testing;
using V = std::vector<double>;

TEST(LayerGrad, Linear) {
  Rng rng(1);
  int N = 5, in = 7, out = 3;
  V x = random_vector(N * in, rng), W = random_vector(out * in, rng), R = random_vector(N * out, rng), y(N * out);
  auto loss = [&] { linear_forward(y.data(), x.data(), W.data(), N, in, out); return dot(y, R); };
  V dx(N * in, 7.0), dW(out * in, 0.0);
  linear_backward(dx.data(), dW.data(), R.data(), x.data(), W.data(), N, in, out, false);
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dW", W, dW, loss);
}

TEST(LayerGrad, LayerNorm) {
  Rng rng(2);
  int N = 4, C = 9;
  V x = random_vector(N * C, rng, 2.0), w = random_vector(C, rng), b = random_vector(C, rng), R = random_vector(N * C, rng);
  V y(N * C), mean(N), rstd(N);
  auto loss = [&] { layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C); return dot(y, R); };
  loss();
  V dx(N * C, 0.0), dw(C, 0.0), db(C, 0.0);
  layernorm_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), mean.data(), rstd.data(), w.data(), N, C, false);
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dw", w, dw, loss);
  expect_gradient("db", b, db, loss);
  // accumulate mode adds to what is there
  V dx2(N * C, 1.0), dw2(C, 0.0), db2(C, 0.0);
  layernorm_backward(dx2.data(), dw2.data(), db2.data(), R.data(), x.data(), mean.data(), rstd.data(), w.data(), N, C, true);
  for (int i = 0; i < N * C; i++) EXPECT_NEAR(dx2[i], dx[i] + 1.0, 1e-12);
}

TEST(LayerGrad, SkipLayerNorm) {
  // q = x + y + D z, out = LN(q): the gradients of the loss on out and q (the residual stream goes on past the
  // LayerNorm) reach x, y, z, D, w and b.
  Rng rng(21);
  int N = 5, C = 7;
  V x = random_vector(N * C, rng), y = random_vector(N * C, rng), z = random_vector(N * C, rng, 2.0);
  V D = random_vector(C, rng), w = random_vector(C, rng), b = random_vector(C, rng);
  V Rout = random_vector(N * C, rng), Rq = random_vector(N * C, rng), q(N * C), out(N * C), mean(N), rstd(N);
  auto loss = [&] {
    skip_layernorm_forward(q.data(), out.data(), mean.data(), rstd.data(), x.data(), y.data(), z.data(), D.data(),
                           w.data(), b.data(), N, C);
    return dot(out, Rout) + dot(q, Rq);
  };
  loss();
  V dq = Rq, dw(C, 0.0), db(C, 0.0);
  layernorm_backward(dq.data(), dw.data(), db.data(), Rout.data(), q.data(), mean.data(), rstd.data(), w.data(), N, C,
                     true);  // dq: the gradient at q, which is x's and y's
  V dz(N * C, 0.0), dD(C, 0.0);
  skip_sum_backward(dz.data(), dD.data(), dq.data(), z.data(), D.data(), N, C);
  expect_gradient("dx", x, dq, loss);
  expect_gradient("dy", y, dq, loss);
  expect_gradient("dz", z, dz, loss);
  expect_gradient("dD", D, dD, loss);
  expect_gradient("dw", w, dw, loss);
  expect_gradient("db", b, db, loss);
  // in place: q over y gives the same sums
  V y_in_place = y, out2(N * C);
  skip_layernorm_forward(y_in_place.data(), out2.data(), mean.data(), rstd.data(), x.data(), y_in_place.data(),
                         z.data(), D.data(), w.data(), b.data(), N, C);
  for (int i = 0; i < N * C; i++) EXPECT_EQ(y_in_place[i], q[i]) << i;
}

TEST(LayerGrad, DiagSsm) {
  Rng rng(3);
  int B = 2, T = 11, d = 6;
  V x = random_vector(B * T * d, rng), Win = random_vector(d * d, rng, 0.4), Wout = random_vector(d * d, rng, 0.4);
  V lam = random_vector(d, rng), R = random_vector(B * T * d, rng);
  V y(B * T * d), u(B * T * d), h(B * T * d), scratch(B * T * d);
  auto w = [&] { return DiagSsmWeights<double>{Win.data(), lam.data(), Wout.data()}; };
  auto loss = [&] {
    diag_ssm_forward(y.data(), u.data(), h.data(), x.data(), w(), B, T, d, (const double*)nullptr, (double*)nullptr);
    return dot(y, R);
  };
  loss();
  V dx(B * T * d, 7.0), dWin(d * d, 0.0), dlam(d, 0.0), dWout(d * d, 0.0);  // dx is overwritten
  diag_ssm_backward(dx.data(), DiagSsmGrads<double>{dWin.data(), dlam.data(), dWout.data()}, R.data(), x.data(),
                    u.data(), h.data(), w(), B, T, d, scratch.data());
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dW_in", Win, dWin, loss);
  expect_gradient("dlam", lam, dlam, loss);
  expect_gradient("dW_out", Wout, dWout, loss);
}

TEST(LayerGrad, DiagSsmCarriedStateEqualsLongerScan) {
  // Scanning [0, T) at once equals scanning [0, k) then [k, T) from the carried state.
  Rng rng(4);
  int T = 9, d = 5, k = 4;
  V u = random_vector(T * d, rng), lam = random_vector(d, rng), full(T * d), part(T * d);
  diag_scan_forward(full.data(), u.data(), lam.data(), 1, T, d, (const double*)nullptr);
  diag_scan_forward(part.data(), u.data(), lam.data(), 1, k, d, (const double*)nullptr);
  diag_scan_forward(part.data() + k * d, u.data() + k * d, lam.data(), 1, T - k, d, part.data() + (k - 1) * d);
  for (int i = 0; i < T * d; i++) EXPECT_NEAR(full[i], part[i], 1e-12);
}

TEST(LayerGrad, DecayInitHalfLives) {
  int d = 64, P = 2;
  V lam(d);
  diag_ssm_init_decay(lam.data(), d, P);
  auto half_life_bytes = [&](int c) {
    double a = std::exp(-std::log1p(std::exp(lam[c])));
    return P * std::log(0.5) / std::log(a);  // patch steps to halve, times bytes per step
  };
  EXPECT_NEAR(half_life_bytes(0), 1.0, 1e-9);
  EXPECT_NEAR(half_life_bytes(d - 1), 2048.0, 1e-6);
  EXPECT_NEAR(half_life_bytes(d / 2) / half_life_bytes(d / 2 - 1), std::pow(2048.0, 1.0 / (d - 1)), 1e-9);
}

TEST(LayerGrad, SwiGlu) {
  Rng rng(5);
  int N = 4, d = 5, H = 6;
  V x = random_vector(N * d, rng), W12 = random_vector(2 * H * d, rng, 0.5), W3 = random_vector(d * H, rng, 0.5);
  V R = random_vector(N * d, rng), y(N * d), g(N * 2 * H), m(N * H), scratch(N * 3 * H);
  auto loss = [&] {
    swiglu_forward(y.data(), g.data(), m.data(), x.data(), W12.data(), W3.data(), N, d, H, (const double*)nullptr);
    return dot(y, R);
  };
  loss();
  // with a residual: the same output plus the residual (a constant: the gradients below are unchanged)
  V residual = random_vector(N * d, rng), y_res(N * d);
  swiglu_forward(y_res.data(), g.data(), m.data(), x.data(), W12.data(), W3.data(), N, d, H, residual.data());
  for (int i = 0; i < N * d; i++) EXPECT_DOUBLE_EQ(y_res[i], y[i] + residual[i]) << i;
  V dx(N * d), dW12(2 * H * d, 0.0), dW3(d * H, 0.0);
  swiglu_backward(dx.data(), dW12.data(), dW3.data(), R.data(), x.data(), g.data(), m.data(), W12.data(), W3.data(), N,
                  d, H, scratch.data());
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dW12", W12, dW12, loss);
  expect_gradient("dW3", W3, dW3, loss);
}

TEST(LayerGrad, EmbeddingPatchBroadcast) {
  // Embedding -> mean pool -> (identity at patch rate) -> causal broadcast + byte residual, P=3 and odd T.
  Rng rng(6);
  int B = 2, T = 10, P = 3, d = 4, Np = patch_count(T, P);
  std::vector<uint8_t> x(B * T);
  for (auto& b : x) b = uint8_t(rng.next_u64() % 5);  // repeated bytes exercise accumulation
  V E = random_vector(256 * d, rng), start = random_vector(d, rng), R = random_vector(B * T * d, rng);
  V e(B * T * d), p(B * Np * d), out(B * T * d);
  auto loss = [&] {
    embedding_forward(e.data(), x.data(), E.data(), B * T, d);
    patch_mean_forward(p.data(), e.data(), B, T, P, d);
    patch_broadcast_forward(out.data(), p.data(), start.data(), e.data(), B, T, P, d);
    return dot(out, R);
  };
  loss();
  V dp(B * Np * d), dstart(d, 0.0), de(B * T * d), dE(256 * d, 0.0);
  patch_broadcast_backward(dp.data(), dstart.data(), de.data(), R.data(), B, T, P, d);
  patch_mean_backward(de.data(), dp.data(), B, T, P, d);
  embedding_backward(dE.data(), de.data(), x.data(), B * T, d);
  expect_gradient("dE", E, dE, loss, 1e-6, 256 * d);
  expect_gradient("dstart", start, dstart, loss);
}

TEST(LayerGrad, PatchAttn) {
  // Odd T with a partial last patch (ignored), T < P (no patch at all), and P = 1 (one weight, always 1).
  struct Case { int T, P; };
  for (Case k : {Case{11, 3}, Case{9, 4}, Case{2, 3}, Case{5, 1}}) {
    Rng rng(8);
    int B = 2, d = 5, Np = patch_count(k.T, k.P);
    V e = random_vector(B * k.T * d, rng), q = random_vector(d, rng, 1.5), R = random_vector(B * Np * d, rng);
    V p(B * Np * d), weights(B * Np * k.P);
    auto loss = [&] {
      patch_attn_forward(p.data(), weights.data(), e.data(), q.data(), B, k.T, k.P, d);
      return dot(p, R);
    };
    loss();
    V de(B * k.T * d, 0.0), dq(d, 0.0);
    patch_attn_backward(de.data(), dq.data(), R.data(), e.data(), q.data(), weights.data(), B, k.T, k.P, d);
    std::string what = "T=" + std::to_string(k.T) + " P=" + std::to_string(k.P);
    expect_gradient(("de " + what).c_str(), e, de, loss);
    expect_gradient(("dq " + what).c_str(), q, dq, loss);
  }
}

TEST(LayerGrad, PatchAttnAtZeroQueryIsTheMean) {
  Rng rng(9);
  int B = 2, T = 13, P = 4, d = 6, Np = patch_count(T, P);
  V e = random_vector(B * T * d, rng), q(d, 0.0), attn(B * Np * d), weights(B * Np * P), mean(B * Np * d);
  patch_attn_forward(attn.data(), weights.data(), e.data(), q.data(), B, T, P, d);
  patch_mean_forward(mean.data(), e.data(), B, T, P, d);
  for (size_t i = 0; i < mean.size(); i++) EXPECT_NEAR(attn[i], mean[i], 1e-12);
}

TEST(LayerGrad, PatchSoft) {
  // Odd T with a partial last window (read by no patch, yet scanned), T < P (no patch at all), and P = 1.
  struct Case { int T, P; };
  for (Case k : {Case{11, 3}, Case{9, 4}, Case{2, 3}, Case{5, 1}}) {
    Rng rng(10);
    int B = 2, d = 5, N = B * k.T, Np = patch_count(k.T, k.P);
    V e = random_vector(N * d, rng), w = random_vector(d, rng), c = random_vector(1, rng);
    V R = random_vector(B * Np * d, rng);
    V p(B * Np * d), n(N * d), z(N), keep(N);
    auto loss = [&] {
      patch_soft_forward(p.data(), n.data(), z.data(), keep.data(), e.data(), w.data(), c.data(), B, k.T, k.P, d,
                         (double*)nullptr);
      return dot(p, R);
    };
    loss();
    V de(N * d, 0.0), dw(d, 0.0), dc(1, 0.0);
    patch_soft_backward(de.data(), dw.data(), dc.data(), R.data(), e.data(), w.data(), n.data(), z.data(), keep.data(),
                        B, k.T, k.P, d);
    std::string what = "T=" + std::to_string(k.T) + " P=" + std::to_string(k.P);
    expect_gradient(("de " + what).c_str(), e, de, loss);
    expect_gradient(("dw " + what).c_str(), w, dw, loss);
    expect_gradient(("dc " + what).c_str(), c, dc, loss);
  }
}

// Hard boundaries (scores of +-40) exactly at the window starts make every soft patch its window's mean; and the
// scan run a byte at a time from a carried state (streaming) gives the parallel scan's numbers.
TEST(LayerGrad, PatchSoftWithHardBoundariesIsTheMean) {
  Rng rng(11);
  int B = 2, T = 13, P = 4, d = 6, N = B * T, Np = patch_count(T, P);
  V e = random_vector(N * d, rng), w(d, 0.0), c(1, 0.0);
  w[0] = 1;
  for (int i = 0; i < N; i++) e[i * d] = (i % T) % P == 0 ? 40 : -40;
  V soft(B * Np * d), mean(B * Np * d), n(N * d), z(N), keep(N);
  patch_soft_forward(soft.data(), n.data(), z.data(), keep.data(), e.data(), w.data(), c.data(), B, T, P, d,
                     (double*)nullptr);
  patch_mean_forward(mean.data(), e.data(), B, T, P, d);
  for (size_t i = 0; i < mean.size(); i++) EXPECT_NEAR(soft[i], mean[i], 1e-12);
  V state(B * (d + 1), 0.0), column(B * d), p1(B * d), n1(B * d), z1(B), k1(B);
  for (int t = 0; t < T; t++) {
    for (int b = 0; b < B; b++) std::copy_n(e.begin() + ((size_t)b * T + t) * d, d, column.begin() + b * d);
    patch_soft_forward(p1.data(), n1.data(), z1.data(), k1.data(), column.data(), w.data(), c.data(), B, 1, 1, d,
                       state.data());
    if ((t + 1) % P != 0) continue;
    for (int b = 0; b < B; b++)
      for (int k = 0; k < d; k++) EXPECT_EQ(p1[b * d + k], soft[((size_t)b * Np + (t + 1) / P - 1) * d + k]);
  }
}

// Bytes after which the table is sure (a, one logit far above the rest) close a patch only at 4P bytes; the others
// (uniform rows: 8 bits) close it once it holds P bytes.
TEST(LayerGrad, EntropyPatchesCloseWhereTheTableIsUnsure) {
  std::vector<double> G(256 * 256, 0.0);
  G['a' * 256 + 'b'] = 50;
  EXPECT_NEAR(bigram_entropy_bits(G.data()), 8.0, 1e-12);
  EXPECT_LT(bigram_entropy_bits(G.data() + 'a' * 256), 1e-6);
  std::string text = "xaaxxaxaaaax";  // T = 12, P = 2: patches [0,4) [4,7) [7,12)
  EntropyPatches s = entropy_patches(G.data(), (const uint8_t*)text.data(), 1, 12, 2, 3.0);
  EXPECT_EQ(s.slots, 6);
  EXPECT_EQ(s.first, (std::vector<int>{0, 4, 7, 0, 0, 0}));
  EXPECT_EQ(s.length, (std::vector<int>{4, 3, 5, 0, 0, 0}));
  EXPECT_EQ(s.source, (std::vector<int>{-1, -1, -1, 0, 0, 0, 1, 1, 1, 1, 1, 2}));
  EntropyPatches run = entropy_patches(G.data(), (const uint8_t*)"aaaaaaaaax", 1, 10, 2, 3.0);
  EXPECT_EQ(run.first, (std::vector<int>{0, 8, 0, 0, 0}));
  EXPECT_EQ(run.length, (std::vector<int>{8, 2, 0, 0, 0}));
  EXPECT_EQ(run.source, (std::vector<int>{-1, -1, -1, -1, -1, -1, -1, 0, 0, 1}));
}

// The pooling and broadcast over variable patches, through the embedding as the model uses them, and the bigram
// table's loss.
TEST(LayerGrad, PatchEntropy) {
  Rng rng(12);
  int B = 2, T = 17, P = 2, d = 4, N = B * T;
  std::vector<uint8_t> x(N), y(N);
  for (auto& b : x) b = uint8_t(rng.next_u64() % 8);  // a few byte values, so rows of G are read several times
  for (auto& b : y) b = uint8_t(rng.next_u64());
  V G(256 * 256);
  for (int a = 0; a < 256; a++) {  // logits of a random spread: entropies over 4..8 bits
    double scale = 3 * rng.uniform() / kBigramLogitScale;
    for (int k = 0; k < 256; k++) G[a * 256 + k] = scale * rng.normal();
  }
  EntropyPatches s = entropy_patches(G.data(), x.data(), B, T, P, 6.5);
  std::set<int> lengths(s.length.begin(), s.length.end());
  EXPECT_GE(lengths.size(), 3u) << "patches of several lengths, and padding";
  V E = random_vector(256 * d, rng), start = random_vector(d, rng), R = random_vector(N * d, rng);
  V e(N * d), p(B * s.slots * d), out(N * d);
  auto loss = [&] {
    embedding_forward(e.data(), x.data(), E.data(), N, d);
    patch_entropy_pool_forward(p.data(), e.data(), s, d);
    patch_entropy_broadcast_forward(out.data(), p.data(), start.data(), e.data(), s, d);
    return dot(out, R);
  };
  loss();
  V dp(B * s.slots * d), dstart(d, 0.0), de(N * d), dE(256 * d, 0.0);
  patch_entropy_broadcast_backward(dp.data(), dstart.data(), de.data(), R.data(), s, d);
  patch_entropy_pool_backward(de.data(), dp.data(), s, d);
  embedding_backward(dE.data(), de.data(), x.data(), N, d);
  expect_gradient("dE", E, dE, loss, 1e-6, 256 * d);
  expect_gradient("dstart", start, dstart, loss);
  V bigram_rows(N);
  auto bigram = [&] {  // the mean, as the model adds it
    bigram_loss_forward(bigram_rows.data(), G.data(), x.data(), y.data(), N);
    double total = 0;
    for (double l : bigram_rows) total += l;
    return total / N;
  };
  V dG(256 * 256, 0.0);
  bigram_loss_backward(dG.data(), G.data(), x.data(), y.data(), N, 1.0 / N);
  expect_gradient("dG", G, dG, bigram, 1e-6, 8 * 256);
}

TEST(LayerGrad, CrossEntropy) {
  Rng rng(7);
  int N = 3;
  V logits = random_vector(N * 256, rng, 3.0), loss_rows(N), dlogits(N * 256);
  std::vector<uint8_t> y = {0, 255, 17};
  auto loss = [&] {
    cross_entropy_forward_backward(loss_rows.data(), (double*)nullptr, logits.data(), y.data(), N, 0.0);
    return loss_rows[0] + loss_rows[1] + loss_rows[2];
  };
  cross_entropy_forward_backward(loss_rows.data(), dlogits.data(), logits.data(), y.data(), N, 1.0);
  expect_gradient("dlogits", logits, dlogits, loss, 1e-6, N * 256);
  // uniform logits cost exactly 8 bits
  V flat(256, 0.5), one(1);
  uint8_t t = 42;
  cross_entropy_forward_backward(one.data(), (double*)nullptr, flat.data(), &t, 1, 0.0);
  EXPECT_NEAR(one[0], std::log(256.0), 1e-12);
}

// q, k, v packed in one [B, T, 3, H, Dh] buffer (the transformer's qkv projection), so the stride is exercised.
TEST(LayerGrad, CausalAttention) {
  Rng rng(11);
  AttentionShape s{2, 7, 2, 3, 3 * 2 * 3};
  int D = s.H * s.Dh;
  double scale = 0.7;
  V qkv = random_vector((size_t)s.B * s.T * 3 * D, rng), R = random_vector((size_t)s.B * s.T * D, rng);
  V o((size_t)s.B * s.T * D), lse((size_t)s.B * s.H * s.T);
  auto loss = [&] {
    attention_forward(o.data(), lse.data(), qkv.data(), qkv.data() + D, qkv.data() + 2 * D, s, scale);
    return dot(o, R);
  };
  loss();
  V dqkv(qkv.size(), 5.0), delta(lse.size());  // overwritten, not accumulated
  attention_backward(dqkv.data(), dqkv.data() + D, dqkv.data() + 2 * D, delta.data(), R.data(), qkv.data(),
                     qkv.data() + D, qkv.data() + 2 * D, o.data(), lse.data(), s, scale);
  expect_gradient("dqkv", qkv, dqkv, loss);
}

// Position 0 attends to itself only, so its output is its own value row; lse matches an explicit softmax.
TEST(LayerGrad, CausalAttentionFirstRowAndLse) {
  Rng rng(12);
  AttentionShape s{1, 4, 1, 5, 0};
  V q = random_vector(20, rng), k = random_vector(20, rng), v = random_vector(20, rng), o(20), lse(4);
  attention_forward(o.data(), lse.data(), q.data(), k.data(), v.data(), s, 0.5);
  for (int i = 0; i < 5; i++) EXPECT_DOUBLE_EQ(o[i], v[i]);
  double z = 0;
  for (int j = 0; j < 4; j++) {
    double sc = 0;
    for (int i = 0; i < 5; i++) sc += q[15 + i] * k[5 * j + i];
    z += std::exp(0.5 * sc);
  }
  EXPECT_NEAR(lse[3], std::log(z), 1e-12);
}
