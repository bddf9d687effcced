// Weight quantization (layers/quantize.h) and quantized checkpoints (train/checkpoint.h): values on a group's grid
// come back exactly, no group does worse than plain absmax rounding, 4-bit codes pack two a byte at odd widths, and
// a quantized checkpoint of every family loads as the dequantized weights with every other parameter to the bit,
// refuses to resume training, and is as small as its bits say.
#include <gtest/gtest.h>
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_fixture.h"
#include "core/error.h"
#include "core/rng.h"
#include "infer/calibrate.h"
#include "layers/quantize.h"
#include "layers/quantized_linear.h"
#include "model_testing.h"
#include "models/model.h"
#include "stream_parity.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"

using namespace bytelm;
namespace fs = std::filesystem;

namespace {

std::vector<float> normal_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> w((size_t)(rows * cols));
  for (float& x : w) x = float(rng.normal());
  return w;
}

// The squared error of one group under plain absmax rounding (scale = absmax / qmax, round to nearest).
double absmax_error(const float* x, int64_t n, int qmax) {
  float absmax = 0.f;
  for (int64_t i = 0; i < n; i++) absmax = std::max(absmax, std::fabs(x[i]));
  double err = 0;
  for (int64_t i = 0; i < n; i++) {
    double q = absmax > 0 ? std::nearbyint(x[i] / (absmax / qmax)) * (absmax / qmax) : 0.0;
    err += (x[i] - q) * (x[i] - q);
  }
  return err;
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("bytelm_quantize_" + name + "_" + std::to_string(::getpid()))).string();
}

}  // namespace

TEST(Quantize, ValuesOnTheGridComeBackExactly) {
  for (int bits : {8, 4}) {
    int qmax = bits == 8 ? 127 : 7;
    int64_t rows = 3, cols = 37, group = 8;  // 5 groups a row, the last of 5 columns; odd: a half-filled byte at 4
    std::vector<float> w((size_t)(rows * cols));
    Rng rng(7);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t g = 0; g * group < cols; g++) {
        float scale = 0.01f * float(1 + r + g);  // absmax / qmax may round it by an ulp: compared to 1e-6 below
        for (int64_t c = g * group; c < std::min(cols, (g + 1) * group); c++) {
          int q = int(rng.next_u64() % (2 * qmax + 1)) - qmax;
          if (c == g * group) q = (r + g) % 2 ? qmax : -qmax;  // the group's absmax sits on its grid
          w[(size_t)(r * cols + c)] = float(q) * scale;
        }
      }
    QuantizedMatrix q = quantize_matrix(w.data(), rows, cols, bits, (int)group);
    EXPECT_EQ(q.codes.size(), size_t(rows * (bits == 8 ? cols : (cols + 1) / 2)));
    EXPECT_EQ(q.scales.size(), size_t(rows * 5));
    std::vector<float> back(w.size());
    dequantize_matrix(q, back.data());
    for (size_t i = 0; i < w.size(); i++) ASSERT_NEAR(back[i], w[i], 1e-6f * std::fabs(w[i])) << bits << " bits, " << i;
  }
}

TEST(Quantize, NoGroupDoesWorseThanAbsmaxRounding) {
  int64_t rows = 16, cols = 200, group = 64;  // groups of 64, 64, 64 and 8
  std::vector<float> w = normal_matrix(rows, cols, 11);
  w[5] = 9.f;  // an outlier, where clipping the scale pays
  double total[2] = {0, 0};
  for (int bits : {8, 4}) {
    int qmax = bits == 8 ? 127 : 7;
    QuantizedMatrix q = quantize_matrix(w.data(), rows, cols, bits, (int)group);
    std::vector<float> back(w.size());
    dequantize_matrix(q, back.data());
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c0 = 0; c0 < cols; c0 += group) {
        int64_t n = std::min(group, cols - c0);
        const float* x = w.data() + r * cols + c0;
        double err = 0;
        for (int64_t i = 0; i < n; i++) {
          double d = double(back[(size_t)(r * cols + c0 + i)]) - x[i];
          err += d * d;
          EXPECT_EQ(q.code(r, c0 + i) * q.scales[(size_t)(r * q.groups() + c0 / group)],
                    back[(size_t)(r * cols + c0 + i)]);
        }
        EXPECT_LE(err, absmax_error(x, n, qmax) * (1 + 1e-9)) << bits << " bits, row " << r << ", column " << c0;
        total[bits == 4] += err;
      }
  }
  EXPECT_GT(total[1], 50 * total[0]) << "4 bits must cost far more than 8";  // ~(127/7)^2 = 329x in theory
}

TEST(Quantize, ZeroGroupsAndBadSettings) {
  std::vector<float> w(10, 0.f);
  w[9] = -1.f;
  QuantizedMatrix q = quantize_matrix(w.data(), 1, 10, 4, 5);
  EXPECT_EQ(q.scales[0], 0.f);
  EXPECT_EQ(q.code(0, 9), -7);
  std::vector<float> back(10, 1.f);
  dequantize_matrix(q, back.data());
  EXPECT_EQ(back, w);
  EXPECT_THROW(quantize_matrix(w.data(), 1, 10, 3, 5), Error);
  EXPECT_THROW(quantize_matrix(w.data(), 1, 10, 8, 0), Error);
}

// x [n, cols] whose columns are mixed (x = z A, z standard normal): inputs whose columns correlate, as a model's do.
std::vector<float> correlated_inputs(int64_t n, int64_t cols, uint64_t seed) {
  std::vector<float> z = normal_matrix(n, cols, seed), a = normal_matrix(cols, cols, seed + 1), x((size_t)(n * cols));
  for (int64_t r = 0; r < n; r++)
    for (int64_t j = 0; j < cols; j++) {
      double v = 0;
      for (int64_t k = 0; k < cols; k++)
        v += double(z[(size_t)(r * cols + k)]) * a[(size_t)(k * cols + j)] * (k < 8 ? 3 : 0.3);
      x[(size_t)(r * cols + j)] = float(v);
    }
  return x;
}

std::vector<double> gram_of(const std::vector<float>& x, int64_t n, int64_t cols) {
  std::vector<double> g((size_t)(cols * cols), 0.0);
  for (int64_t r = 0; r < n; r++)
    for (int64_t i = 0; i < cols; i++)
      for (int64_t j = 0; j < cols; j++)
        g[(size_t)(i * cols + j)] += double(x[(size_t)(r * cols + i)]) * x[(size_t)(r * cols + j)];
  return g;
}

// ||x (W - Q)^T||^2: how far the product moves over the inputs x.
double output_error(const std::vector<float>& x, int64_t n, const std::vector<float>& w, const QuantizedMatrix& q) {
  std::vector<float> back(w.size());
  dequantize_matrix(q, back.data());
  double err = 0;
  for (int64_t r = 0; r < n; r++)
    for (int64_t o = 0; o < q.rows; o++) {
      double d = 0;
      for (int64_t c = 0; c < q.cols; c++)
        d += double(x[(size_t)(r * q.cols + c)]) *
             (double(w[(size_t)(o * q.cols + c)]) - back[(size_t)(o * q.cols + c)]);
      err += d * d;
    }
  return err;
}

// GPTQ with uncorrelated inputs has no error to spread: plain rounding, to the bit. With correlated ones it moves
// the product over those inputs far less than rounding does, at both widths and with a column no input reaches.
TEST(Gptq, RoundsPlainlyOnADiagonalAndBeatsRoundingOnCorrelatedInputs) {
  int64_t rows = 24, cols = 40, n = 400;
  std::vector<float> w = normal_matrix(rows, cols, 21);
  std::vector<double> diagonal((size_t)(cols * cols), 0.0);
  for (int64_t i = 0; i < cols; i++) diagonal[(size_t)(i * cols + i)] = 1.0 + i;
  for (int bits : {8, 4}) {
    QuantizedMatrix plain = quantize_matrix(w.data(), rows, cols, bits, 16);
    QuantizedMatrix gptq = quantize_matrix_gptq(w.data(), rows, cols, bits, 16, diagonal);
    EXPECT_EQ(gptq.codes, plain.codes) << bits;
    EXPECT_EQ(gptq.scales, plain.scales) << bits;
  }
  std::vector<float> x = correlated_inputs(n, cols, 31);
  for (int64_t r = 0; r < n; r++) x[(size_t)(r * cols + 5)] = 0.f;  // a column no input reaches
  std::vector<double> gram = gram_of(x, n, cols);
  for (int bits : {8, 4}) {
    double plain = output_error(x, n, w, quantize_matrix(w.data(), rows, cols, bits, 16));
    double gptq = output_error(x, n, w, quantize_matrix_gptq(w.data(), rows, cols, bits, 16, gram));
    EXPECT_LT(gptq, 0.5 * plain) << bits << " bits: GPTQ " << gptq << ", rounding " << plain;
  }
  EXPECT_THROW(quantize_matrix_gptq(w.data(), rows, cols, 4, 16, std::vector<double>(10)), Error);
}

// Calibration records the inputs of every product over a stored matrix, and none for a table only looked up.
TEST(Gptq, CalibrationRecordsEachProductsInputs) {
  auto m = make_model<float>({"ssm", 16, 2, 2}, 2);
  std::vector<uint8_t> text(300);
  for (size_t i = 0; i < text.size(); i++) text[i] = uint8_t("the quick brown fox "[i % 20]);
  std::map<size_t, ProductInputs> inputs = gather_product_inputs(*m, text.data(), text.size(), 64, 2);
  std::map<std::string, const ProductInputs*> by_name;
  for (const ParamInfo& p : m->param_info())
    if (inputs.count(p.offset)) by_name[p.name] = &inputs.at(p.offset);
  ASSERT_EQ(by_name.size(), 2u + 2 * 4);  // embed, head and four matrices a block
  EXPECT_EQ(by_name["embed.weight"]->count, 0);
  int64_t patches = by_name["blocks.0.ssm.in.weight"]->count, bytes = by_name["head.weight"]->count;
  EXPECT_EQ(bytes, 299) << "the head makes the logits of every byte after the first";
  EXPECT_NEAR(patches, bytes / 2.0, 2) << "the blocks run once a patch of 2 (a window's last may be short)";
  for (const auto& [name, in] : by_name) {
    if (name == "embed.weight") continue;
    EXPECT_EQ(in->count, name == "head.weight" ? bytes : patches) << name;
    for (int64_t i = 0; i < in->cols; i++) {
      EXPECT_GT(in->gram[(size_t)(i * in->cols + i)], 0.0) << name;
      for (int64_t j = 0; j < i; j++)
        EXPECT_EQ(in->gram[(size_t)(i * in->cols + j)], in->gram[(size_t)(j * in->cols + i)]) << name;
    }
  }
  std::vector<uint8_t> x(64, 'a'), y(64, 'b');  // and no longer records once gathered
  m->forward(x.data(), y.data(), 1, 64, nullptr);
  EXPECT_EQ(inputs.at(m->param_info()[m->param_info().size() - 1].offset).count, bytes);
}

// The product from the codes against a double-precision one over the dequantized matrix, both kernels: widths with
// and without a tail of columns under 8 in a group, groups that do not divide the width, 1 to 9 rows of x (the
// kernel takes them 4 at a time), and products over a middle band of the matrix's rows.
TEST(QuantizedLinear, MatchesTheDequantizedProduct) {
  struct Case {
    int64_t rows, cols;
    int group, first_row, out;
  };
  for (Case c : {Case{12, 64, 64, 0, 12}, Case{12, 37, 8, 3, 7}, Case{9, 100, 5, 1, 8}, Case{7, 130, 64, 6, 1}})
    for (int bits : {8, 4})
      for (QuantizedKernel kernel : {QuantizedKernel::best, QuantizedKernel::portable}) {
        std::vector<float> w = normal_matrix(c.rows, c.cols, 3);
        QuantizedMatrix q = widen_codes(quantize_matrix(w.data(), c.rows, c.cols, bits, c.group));
        std::vector<float> wd(w.size());
        dequantize_matrix(q, wd.data());
        for (int N = 1; N <= 9; N++) {
          std::vector<float> x = normal_matrix(N, c.cols, 100 + N), y((size_t)N * c.out, NAN);
          quantized_linear_forward(y.data(), x.data(), q, c.first_row, N, c.out, kernel);
          for (int n = 0; n < N; n++)
            for (int o = 0; o < c.out; o++) {
              double want = 0, scale = 0;
              for (int64_t k = 0; k < c.cols; k++) {
                want += double(wd[(size_t)((c.first_row + o) * c.cols + k)]) * x[(size_t)(n * c.cols + k)];
                scale += std::fabs(double(wd[(size_t)((c.first_row + o) * c.cols + k)]) * x[(size_t)(n * c.cols + k)]);
              }
              ASSERT_NEAR(y[(size_t)(n * c.out + o)], want, 1e-6 * scale + 1e-30)
                  << c.cols << " columns in groups of " << c.group << ", " << bits << " bits, N " << N << ", row " << n
                  << ", output " << o << (kernel == QuantizedKernel::best ? " (best)" : " (portable)");
            }
        }
      }
  QuantizedMatrix four = quantize_matrix(normal_matrix(2, 8, 1).data(), 2, 8, 4, 8);
  float x[8] = {}, y[2];
  EXPECT_THROW(quantized_linear_forward(y, x, four, 0, 1, 2), Error);               // 4-bit codes: widen first
  EXPECT_THROW(quantized_linear_forward(y, x, widen_codes(four), 1, 1, 2), Error);  // rows past the matrix
}

// Threads take whole output elements, so a product large enough to be threaded gives the same bits at any count.
TEST(QuantizedLinear, SameBitsAtAnyThreadCount) {
  int64_t rows = 300, cols = 260;
  QuantizedMatrix q = quantize_matrix(normal_matrix(rows, cols, 5).data(), rows, cols, 8, 64);
  std::vector<float> x = normal_matrix(5, cols, 6), one(5 * rows), two(5 * rows);
  int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  quantized_linear_forward(one.data(), x.data(), q, 0, 5, (int)rows);
  omp_set_num_threads(2);
  quantized_linear_forward(two.data(), x.data(), q, 0, 5, (int)rows);
  omp_set_num_threads(threads);
  EXPECT_EQ(one, two);
}

// Each family's weight matrices come back dequantized, everything else to the bit, and the loss stays close.
TEST(QuantizedCheckpoint, EveryFamilyLoadsDequantized) {
  ModelConfig transformer{"transformer", 16, 2, 1};
  transformer.head_dim = 8;
  transformer.bigram_buckets = 7;
  transformer.bigram_dim = 4;
  ModelConfig hybrid = transformer;
  hybrid.arch = "hybrid";
  hybrid.hybrid_layers = "sa";
  hybrid.conv_len = 8;
  std::string path = temp_path("families") + ".safetensors";
  for (const ModelConfig& config : {ModelConfig{"ssm", 16, 2, 2}, ModelConfig{"mamba", 16, 2, 1}, transformer, hybrid})
    for (int bits : {8, 4}) {
      SCOPED_TRACE(config.arch + ", " + std::to_string(bits) + " bits");
      RunConfig cfg;
      cfg.model = config;
      auto m = make_model<float>(config, 3);
      save_quantized_checkpoint(path, *m, cfg, 9, bits, 16);
      LoadedCheckpoint ck = load_checkpoint(path, false);
      EXPECT_EQ(ck.quant_bits, bits);
      EXPECT_EQ(ck.step, 9);
      int quantized = 0;
      for (const ParamInfo& p : m->param_info()) {
        std::vector<float> want(m->params().begin() + p.offset, m->params().begin() + p.offset + p.size);
        if (is_quantized_weight(p)) {
          quantized++;
          int64_t cols = p.shape.back(), rows = (int64_t)p.size / cols;
          dequantize_matrix(quantize_matrix(want.data(), rows, cols, bits, 16), want.data());
        }
        std::vector<float> got(ck.model->params().begin() + p.offset, ck.model->params().begin() + p.offset + p.size);
        EXPECT_EQ(got, want) << p.name;
      }
      EXPECT_GE(quantized, 3) << "the embedding and the layers' products at least";
      Rng rng(5);
      std::vector<uint8_t> x, y;
      bytelm::testing::text_batch(rng, 2, 24, x, y);
      float loss = m->forward(x.data(), y.data(), 2, 24, nullptr);
      float loss_q = ck.model->forward(x.data(), y.data(), 2, 24, nullptr);
      EXPECT_NEAR(loss_q, loss, bits == 8 ? 0.01 : 0.2);
    }
  fs::remove(path);
}

// A quantized checkpoint's streams take their products from the codes (the CPU backend's kQuantizedRows), the
// parallel forward from the dequantized fp32 weights: the same function to fp32 rounding, in every family. That the
// codes were read shows as streams that differ, in the last bits, from those of a model holding the same fp32
// weights without the codes; loaded where codes pay (the default), a model this small takes none.
TEST(QuantizedCheckpoint, StreamsReadTheCodesAndMatchTheForward) {
  ModelConfig transformer{"transformer", 16, 2, 1};
  transformer.head_dim = 8;
  transformer.bigram_buckets = 7;
  transformer.bigram_dim = 4;
  std::string path = temp_path("streams") + ".safetensors";
  for (const ModelConfig& config : {ModelConfig{"ssm", 32, 2, 2}, ModelConfig{"mamba", 16, 2, 1}, transformer}) {
    SCOPED_TRACE(config.arch);
    RunConfig cfg;
    cfg.model = config;
    save_quantized_checkpoint(path, *make_model<float>(config, 4), cfg, 1, 8, 16);
    LoadedCheckpoint ck = load_checkpoint(path, false, "cpu", QuantizedUse::always);  // tiny: where_it_pays says no
    Rng rng(8);
    EXPECT_LT(bytelm::testing::stream_vs_forward_error(*ck.model, 3, 12, rng), 1e-5);
    auto plain = make_model<float>(config, 4);
    plain->params() = ck.model->params();
    const uint8_t bytes[3] = {'a', 'b', 'c'};
    std::vector<float> coded(3 * 256), fp32(3 * 256);
    auto s1 = ck.model->make_streams(3), s2 = plain->make_streams(3);
    double differs = 0;
    for (int t = 0; t < 6; t++) {
      s1->step(bytes, coded.data());
      s2->step(bytes, fp32.data());
      for (size_t i = 0; i < coded.size(); i++) {
        ASSERT_NEAR(coded[i], fp32[i], 1e-4 * (1 + std::fabs(fp32[i])));
        differs += coded[i] != fp32[i];
      }
    }
    EXPECT_GT(differs, 0) << "the streams never read the codes";
    // by default a model this small keeps its weights in cache and takes no codes: the fp32 streams, to the bit
    LoadedCheckpoint small = load_checkpoint(path, false);
    auto s3 = small.model->make_streams(3), s4 = plain->make_streams(3);
    for (int t = 0; t < 3; t++) {
      s3->step(bytes, coded.data());
      s4->step(bytes, fp32.data());
      ASSERT_EQ(coded, fp32);
    }
  }
  fs::remove(path);
}

TEST(QuantizedCheckpoint, SmallAsItsBitsAndNeverResumed) {
  RunConfig cfg;
  cfg.model = {"ssm", 128, 2, 2};  // wide enough that the header and the vectors weigh little
  auto m = make_model<float>(cfg.model, 1);
  std::string path = temp_path("size") + ".safetensors";
  double fp32_bytes = 4.0 * m->param_count();
  for (int bits : {8, 4}) {
    save_quantized_checkpoint(path, *m, cfg, 1, bits, 64);
    // 8 bits + a 32-bit scale a group of 64 = 8.5 bits a weight (4.5 at 4 bits), plus the fp32 vectors and header
    double ratio = fs::file_size(path) / fp32_bytes;
    EXPECT_LT(ratio, bits == 8 ? 0.29 : 0.16) << bits;
    EXPECT_GT(ratio, bits == 8 ? 0.26 : 0.14) << bits;
  }
  try {
    load_checkpoint(path, true);
    ADD_FAILURE() << "resumed training from a quantized checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("quantized checkpoint"), std::string::npos) << e.what();
  }
  fs::remove(path);
}

// A quantized file whose tensors disagree with its config is a clear error, never weights read out of bounds.
TEST(QuantizedCheckpoint, DefectsAreClearErrors) {
  RunConfig cfg;
  cfg.model = {"ssm", 16, 1, 2};
  auto m = make_model<float>(cfg.model, 1);
  std::string path = temp_path("defects") + ".safetensors";
  save_quantized_checkpoint(path, *m, cfg, 1, 4, 16);
  Safetensors good = safetensors_read(path);
  // `name` one column short (short) or its codes read as floats (f32); `quant` the metadata's, where given
  enum Change { none, one_short, as_f32 };
  auto rewrite = [&](const std::string& name, Change change, const std::string& quant, const std::string& words) {
    Safetensors st = good;
    st.metadata.erase("crc32");
    if (!quant.empty()) st.metadata["quant"] = quant;
    std::vector<TensorRef> tensors;
    bool changed = false;
    for (const Tensor& t : st.tensors) {
      TensorRef ref{t.name, t.shape, t.dtype == "F32" ? (const void*)t.data.data() : (const void*)t.bytes.data(),
                    t.dtype};
      if (t.name == name && change == one_short) ref.shape.back()--, changed = true;
      if (t.name == name && change == as_f32)
        ref.dtype = "F32", ref.shape = {(int64_t)t.bytes.size() / 4}, changed = true;
      tensors.push_back(ref);
    }
    ASSERT_EQ(changed, change != none) << name;
    safetensors_write(path, tensors, st.metadata);
    try {
      load_checkpoint(path, false);
      ADD_FAILURE() << "loaded a defective file (" << words << ")";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  rewrite("blocks.0.ssm.in.weight", one_short, "", "has shape 16x7");
  rewrite("blocks.0.ssm.in.weight.scale", one_short, "", "has shape 16x0");
  rewrite("blocks.0.ssm.in.weight", as_f32, "", "has dtype F32, expected I8 or U8");
  rewrite("", none, "{\"bits\":3,\"group\":16}", "8 or 4 bits");
  rewrite("", none, "{\"bits\":4}", "without \"group\"");
  fs::remove(path);
}

// The command as a user runs it: the JSON report, eval of the result agreeing with it, generate from it, and each
// misuse one clear line with nothing written.
using bytelm::testing::Cli;
using bytelm::testing::Result;

TEST_F(Cli, QuantizeReportsAndEveryCommandLoadsTheResult) {
  std::string ck = checkpoint();
  std::string text = file("probe.txt", "the lazy dog. the quick fox jumps over the brown dog.");
  std::string out = (dir / "q4.safetensors").string();
  Result q = run("quantize --quiet --ckpt " + ck + " --out " + out + " --bits 4 --group 8 --data " + text);
  ASSERT_EQ(q.code, 0) << q.err;
  for (const char* key :
       {"\"bits\":4", "\"group\":8", "\"weight_rel_error\":", "\"bpb\":", "\"bpb_quantized\":", "\"eval_bytes\":53"})
    EXPECT_NE(q.out.find(key), std::string::npos) << key << " in " << q.out;
  Result e = run("eval --quiet --ckpt " + out + " --data " + text);
  ASSERT_EQ(e.code, 0) << e.err;
  std::string bpb = e.out.substr(e.out.find("\"bpb\":") + 6);
  bpb = bpb.substr(0, bpb.find(','));
  EXPECT_NE(q.out.find("\"bpb_quantized\":" + bpb + ","), std::string::npos) << "eval says " << bpb << ": " << q.out;
  Result c = run("quantize --quiet --ckpt " + ck + " --out " + (dir / "gptq.safetensors").string() +
                 " --bits 4 --group 8 --calib " + text + " --data " + text);
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("\"method\":\"gptq\""), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("\"calib_bytes\":53"), std::string::npos) << c.out;
  expect_clean_error(run("quantize --ckpt " + ck + " --out " + (dir / "x").string() + " --calib-bytes 9"),
                     "--calib-bytes needs --calib");
  Result g = run("generate --ckpt " + out + " --prompt 'the ' --bytes 20 --seed 1");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.out.size(), 24u);

  expect_clean_error(run("quantize --ckpt " + ck + " --out " + out), "exists (pass --force");
  EXPECT_EQ(run("quantize --ckpt " + ck + " --out " + out + " --force").code, 0);
  expect_clean_error(run("quantize --ckpt " + ck + " --out " + ck + " --force"), "is the checkpoint being quantized");
  expect_clean_error(run("quantize --ckpt " + ck + " --out " + (dir / "x").string() + " --bits 2"), "8 or 4 bits");
  expect_clean_error(
      run("quantize --ckpt " + ck + " --out " + (dir / "x").string() + " --data " + (dir / "none").string()), "none");
  EXPECT_FALSE(fs::exists(dir / "x"));
  // a run directory holding a quantized checkpoint cannot be resumed
  std::string run_dir = (dir / "run").string();
  ASSERT_EQ(run("quantize --ckpt " + ck + " --out " + (dir / "q8/").string()).code, 0);
  EXPECT_TRUE(fs::exists(dir / "q8" / "checkpoint.safetensors"));
  fs::copy_file(dir / "q8" / "checkpoint.safetensors", ck, fs::copy_options::overwrite_existing);
  expect_clean_error(run("train --quiet --resume " + run_dir + " --steps 4"), "quantized checkpoint");
}
