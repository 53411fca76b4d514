// Mamba-2 mixer and the LM over it: forward vs a plain float64 loop written from DESIGN §5 and
// vs a PyTorch forward (and autograd gradients) of the same weights, chunked vs sequential SSD,
// prefill + decode steps vs one forward, finite-difference gradients, init, bad input.
#include <algorithm>
#include <cmath>

#include "ssm/autograd/gradcheck.h"
#include "ssm/nn/mamba2.h"
#include "ssm/nn/mamba_lm.h"
#include "ssm/ops/elementwise.h"
#include "support/perturb.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using namespace ssm::nn;
using ssm::testing::rel_error;

namespace {

// Two groups of two heads of P = 3: B and C are shared by heads {0, 1} and {2, 3}.
Mamba2Options tiny_options() {
  Mamba2Options o;
  o.d_model = 6;
  o.expand = 2;  // D_inner = 12
  o.head_dim = 3;
  o.n_groups = 2;
  o.d_state = 3;
  o.d_conv = 3;
  o.chunk_size = 4;
  return o;
}

double silu_ref(double v) {
  return v / (1.0 + std::exp(-v));
}
double softplus_ref(double v) {
  return v > 20 ? v : std::log1p(std::exp(v));
}

// The mixer as plainly as possible, in double, from the equations.
Tensor mixer_reference(const Mamba2Mixer& m, const Tensor& x) {
  const auto& o = m.options;
  const int64_t Bn = x.size(0), L = x.size(1), Dm = o.d_model, Di = o.d_inner(), H = o.n_heads(),
                P = o.head_dim, G = o.n_groups, N = o.d_state, K = o.d_conv, Cd = o.conv_dim();
  auto W = [](const Tensor& t) { return t.to_vector(); };
  const auto win = W(m.in_proj->weight), cw = W(m.conv1d->weight), cb = W(m.conv1d->bias),
             dtb = W(m.dt_bias), alog = W(m.A_log), dskip = W(m.D), nw = W(m.norm->weight),
             wout = W(m.out_proj->weight), xv = W(x);
  const int64_t rows = Di + Cd + H;
  Tensor out = Tensor::zeros({Bn, L, Dm}, DType::F64);
  for (int64_t b = 0; b < Bn; ++b) {
    std::vector<std::vector<double>> proj(L, std::vector<double>(rows));
    for (int64_t l = 0; l < L; ++l)
      for (int64_t j = 0; j < rows; ++j)
        for (int64_t k = 0; k < Dm; ++k) proj[l][j] += win[j * Dm + k] * xv[(b * L + l) * Dm + k];
    std::vector<double> S(H * P * N, 0.0);
    for (int64_t l = 0; l < L; ++l) {
      // conv over the xBC part of the projection, then SiLU.
      std::vector<double> xbc(Cd);
      for (int64_t c = 0; c < Cd; ++c) {
        double s = cb[c];
        for (int64_t j = 0; j < K; ++j) {
          const int64_t t = l - (K - 1) + j;
          if (t >= 0) s += cw[c * K + j] * proj[t][Di + c];
        }
        xbc[c] = silu_ref(s);
      }
      std::vector<double> y(Di);
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / (H / G);
        const double dt =
            std::clamp(softplus_ref(proj[l][Di + Cd + h] + dtb[h]), o.dt_limit_min, o.dt_limit_max);
        const double decay = std::exp(-dt * std::exp(alog[h]));
        for (int64_t p = 0; p < P; ++p) {
          const double xp = xbc[h * P + p];
          double acc = dskip[h] * xp;
          for (int64_t n = 0; n < N; ++n) {
            double& s = S[(h * P + p) * N + n];
            s = decay * s + dt * xp * xbc[Di + g * N + n];
            acc += s * xbc[Di + G * N + g * N + n];
          }
          y[h * P + p] = acc;
        }
      }
      // Gate, then RMS-normalise within each group of D_inner / G channels.
      const int64_t gs = Di / G;
      for (int64_t d = 0; d < Di; ++d) y[d] *= silu_ref(proj[l][d]);
      for (int64_t g = 0; g < G; ++g) {
        double ms = 0;
        for (int64_t d = g * gs; d < (g + 1) * gs; ++d) ms += y[d] * y[d];
        const double inv = 1 / std::sqrt(ms / gs + o.norm_eps);
        for (int64_t d = g * gs; d < (g + 1) * gs; ++d) y[d] *= inv * nw[d];
      }
      for (int64_t j = 0; j < Dm; ++j) {
        double s = 0;
        for (int64_t d = 0; d < Di; ++d) s += wout[j * Di + d] * y[d];
        out.set({b, l, j}, s);
      }
    }
  }
  return out;
}

MambaLMConfig tiny_lm_config() {
  MambaLMConfig c;
  c.arch = "mamba2";
  c.mamba2 = tiny_options();
  c.mamba2.d_model = 8;  // D_inner 16: 4 heads of 4
  c.mamba2.head_dim = 4;
  c.mamba2.d_conv = 4;
  c.n_layer = 2;
  c.vocab_size = 19;
  return c;
}

Tensor random_ids(int64_t B, int64_t L, int64_t V, uint64_t seed) {
  Generator g(seed);
  Tensor ids = Tensor::empty({B, L}, DType::I64);
  for (int64_t i = 0; i < B * L; ++i) ids.data<int64_t>()[i] = static_cast<int64_t>(g.below(V));
  return ids;
}

}  // namespace

TEST(Mamba2Mixer, InitFollowsDesign) {
  Generator g(1);
  Mamba2Options o;  // the defaults: N = 128, P = 64, G = 1
  o.d_model = 96;   // D_inner 192: 3 heads
  Mamba2Mixer m(o, g, DType::F64);
  const auto sd = m.state_dict();
  ASSERT_EQ(sd.size(), 8u);
  EXPECT_EQ(shape_str(sd.at("in_proj.weight").shape()), "(643, 96)");   // 192 + 448 + 3
  EXPECT_EQ(shape_str(sd.at("conv1d.weight").shape()), "(448, 1, 4)");  // 192 + 2·128
  EXPECT_EQ(shape_str(sd.at("conv1d.bias").shape()), "(448)");
  EXPECT_EQ(shape_str(sd.at("norm.weight").shape()), "(192)");
  EXPECT_EQ(shape_str(sd.at("out_proj.weight").shape()), "(96, 192)");
  for (const char* name : {"dt_bias", "A_log", "D"})
    EXPECT_EQ(shape_str(sd.at(name).shape()), "(3)") << name;
  for (int64_t h = 0; h < 3; ++h) {
    const double dt = softplus_ref(m.dt_bias.at({h})), A = std::exp(m.A_log.at({h}));
    EXPECT_GE(dt, 1e-3 * (1 - 1e-12));
    EXPECT_LE(dt, 1e-1 * (1 + 1e-12));
    EXPECT_GE(A, 1.0);
    EXPECT_LE(A, 16.0);
    EXPECT_EQ(m.D.at({h}), 1.0);
  }
  EXPECT_NE(m.A_log.at({0}), m.A_log.at({1}));  // drawn, not a fixed ramp
  EXPECT_EQ(m.norm->weight.at({17}), 1.0);
  int ssm_kind = 0;
  for (const auto& p : m.named_parameters())
    if (p.kind == ParamKind::SSM) {
      ++ssm_kind;
      EXPECT_TRUE(p.name == "A_log" || p.name == "D" || p.name == "dt_bias") << p.name;
    }
  EXPECT_EQ(ssm_kind, 3);
  EXPECT_STREQ(m.arch(), "mamba2");
}

TEST(Mamba2Mixer, ForwardMatchesPlainLoopF64) {
  Generator g(2);
  Mamba2Mixer m(tiny_options(), g, DType::F64);
  ssm::testing::perturb_parameters(m, 3, 0.3);
  for (int64_t L : {5, 13}) {  // the sequential path (L <= 8) and the chunked one (Q = 4)
    const Tensor x = ssm::testing::random({2, L, 6}, DType::F64, 4 + L);
    EXPECT_LE(rel_error(m.forward(x), mixer_reference(m, x)), 1e-12) << "L " << L;
  }
}

TEST(Mamba2Mixer, ChunkedEqualsSequentialAtEveryChunkSize) {
  // A length that no chunk size below divides, so the last chunk is partial.
  const Tensor x = ssm::testing::random({2, 23, 6}, DType::F64, 5);
  Generator g0(6);
  Mamba2Mixer base(tiny_options(), g0, DType::F64);
  ssm::testing::perturb_parameters(base, 7, 0.3);
  const Tensor ref = mixer_reference(base, x);  // the step-by-step recurrence
  for (int64_t q : {1, 3, 4, 8, 256}) {
    Mamba2Options o = tiny_options();
    o.chunk_size = q;
    Generator g(6);
    Mamba2Mixer m(o, g, DType::F64);
    m.load_state_dict(base.state_dict());
    EXPECT_LE(rel_error(m.forward(x), ref), 1e-12) << "chunk " << q;
  }
}

TEST(Mamba2Mixer, DeltaLimitClampsInEveryMode) {
  Mamba2Options o = tiny_options();
  o.dt_limit_min = 0.02;  // Δ starts in [1e-3, 1e-1]: both ends clamp some heads
  o.dt_limit_max = 0.05;
  Generator g(30);
  Mamba2Mixer m(o, g, DType::F64);
  ssm::testing::perturb_parameters(m, 31, 0.5);
  const Tensor x = ssm::testing::random({2, 13, 6}, DType::F64, 32);
  const Tensor full = m.forward(x);
  EXPECT_LE(rel_error(full, mixer_reference(m, x)), 1e-12);
  Mamba2Options unclamped = o;
  unclamped.dt_limit_min = 0;
  unclamped.dt_limit_max = INFINITY;
  Generator g2(30);
  Mamba2Mixer free(unclamped, g2, DType::F64);
  free.load_state_dict(m.state_dict());
  EXPECT_GT(rel_error(free.forward(x), full), 1e-3);  // the clamp is active
  MixerCache cache = m.init_cache(2);
  for (int64_t l = 0; l < 13; ++l)
    EXPECT_LE(rel_error(m.step(x.select(1, l), cache), full.select(1, l)), 1e-10);
}

TEST(Mamba2Mixer, Float32AgreesWithFloat64) {
  Generator g64(8), g32(8);
  Mamba2Mixer m64(tiny_options(), g64, DType::F64), m32(tiny_options(), g32, DType::F32);
  ssm::testing::perturb_parameters(m64, 9, 0.3);
  for (auto& [name, t] : m32.state_dict()) t.copy_(m64.state_dict().at(name));
  const Tensor x = ssm::testing::random({2, 17, 6}, DType::F64, 10);
  EXPECT_LE(rel_error(m32.forward(x.to(DType::F32)), m64.forward(x)), 1e-5);
}

TEST(Mamba2Mixer, PrefillThenStepsEqualsForward) {
  for (DType dt : {DType::F64, DType::F32}) {
    Generator g(11);
    Mamba2Mixer m(tiny_options(), g, dt);
    ssm::testing::perturb_parameters(m, 12, 0.3);
    const Tensor x = ssm::testing::random({3, 14, 6}, dt, 13);
    const Tensor full = m.forward(x);
    const double bound = dt == DType::F64 ? 1e-10 : 1e-5;
    for (int64_t split_at : {1, 2, 6, 11}) {  // shorter and longer than d_conv − 1 and Q
      MixerCache cache;
      const Tensor head = m.prefill(x.narrow(1, 0, split_at), cache);
      EXPECT_LE(rel_error(head, full.narrow(1, 0, split_at)), bound);
      for (int64_t l = split_at; l < 14; ++l)
        EXPECT_LE(rel_error(m.step(x.select(1, l), cache), full.select(1, l)), bound)
            << "split " << split_at << " step " << l;
    }
    MixerCache empty = m.init_cache(3);
    for (int64_t l = 0; l < 14; ++l)
      EXPECT_LE(rel_error(m.step(x.select(1, l), empty), full.select(1, l)), bound);
  }
}

TEST(Mamba2Mixer, GradcheckInputAndParameters) {
  for (int64_t L : {5, 10}) {  // sequential and chunked forward (Q = 4)
    Generator g(14);
    Mamba2Mixer m(tiny_options(), g, DType::F64);
    ssm::testing::perturb_parameters(m, 15, 0.3);
    Tensor x = ssm::testing::random({2, L, 6}, DType::F64, 16, true);
    std::vector<Tensor> inputs = {x};
    for (const auto& p : m.named_parameters()) inputs.push_back(p.tensor);
    ASSERT_EQ(inputs.size(), 9u);  // x + in/out proj, conv w/b, dt_bias, A_log, D, norm
    auto result =
        gradcheck([&](const std::vector<Tensor>& in) { return m.forward(in[0]); }, inputs);
    EXPECT_TRUE(result.ok) << "L " << L << "\n" << result.report;
    EXPECT_LE(result.worst_relative_error, 1e-6) << result.report;
  }
}

TEST(Mamba2Mixer, MatchesTorchForwardAndAutograd) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  Generator g(17);
  Mamba2Mixer m(tiny_options(), g, DType::F64);
  ssm::testing::perturb_parameters(m, 18, 0.3);
  Tensor x = ssm::testing::random({2, 11, 6}, DType::F64, 19, true);
  const Tensor dy = ssm::testing::random({2, 11, 6}, DType::F64, 20);
  std::map<std::string, Tensor> in = m.state_dict();
  in["x"] = x.detach();
  in["dy"] = dy;
  in["n_groups"] = Tensor::scalar(2, DType::F64);
  in["eps"] = Tensor::scalar(m.options.norm_eps, DType::F64);
  const auto ref = ssm::testing::run_torch("mamba2_ref.py", in);

  const Tensor y = m.forward(x);
  EXPECT_LE(rel_error(y, ref.at("y")), 1e-10);
  y.backward(dy);
  EXPECT_LE(rel_error(x.grad(), ref.at("grad.x")), 1e-10);
  for (const auto& p : m.named_parameters())
    EXPECT_LE(rel_error(p.tensor.grad(), ref.at("grad." + p.name)), 1e-10) << p.name;

  // float32: the same weights, within the f32 bound.
  Generator g32(17);
  Mamba2Mixer m32(tiny_options(), g32, DType::F32);
  for (auto& [name, t] : m32.state_dict()) t.copy_(m.state_dict().at(name));
  EXPECT_LE(rel_error(m32.forward(x.detach().to(DType::F32)), ref.at("y")), 1e-5);
}

TEST(Mamba2Mixer, BadInput) {
  Generator g(21);
  Mamba2Mixer m(tiny_options(), g, DType::F64);
  EXPECT_SSM_ERROR(m.forward(Tensor::zeros({2, 5, 4}, DType::F64)), "Mamba2Mixer.forward", "'x'",
                   "(B, L, 6)", "(2, 5, 4)");
  EXPECT_SSM_ERROR(m.forward(Tensor::zeros({2, 5, 6}, DType::F32)), "Mamba2Mixer.forward",
                   "float64");
  MixerCache cache = m.init_cache(2);
  EXPECT_SSM_ERROR(m.step(Tensor::zeros({3, 6}, DType::F64), cache), "Mamba2Mixer.step",
                   "cache.conv_state", "(3, 24, 2)", "(2, 24, 2)");
  cache.set("ssm_state", Tensor::zeros({2, 4, 3, 5}, DType::F64));
  EXPECT_SSM_ERROR(m.step(Tensor::zeros({2, 6}, DType::F64), cache), "Mamba2Mixer.step",
                   "cache.ssm_state", "(2, 4, 3, 3)", "(2, 4, 3, 5)");
  cache.tensors.erase("ssm_state");
  EXPECT_SSM_ERROR(m.step(Tensor::zeros({2, 6}, DType::F64), cache), "cache.ssm_state",
                   "undefined");

  Mamba2Options bad = tiny_options();
  bad.head_dim = 5;  // 12 channels do not split into heads of 5
  EXPECT_SSM_ERROR(Mamba2Mixer(bad, g), "Mamba2Mixer", "head_dim 5", "d_inner", "12");
  bad = tiny_options();
  bad.n_groups = 3;  // 4 heads
  EXPECT_SSM_ERROR(Mamba2Mixer(bad, g), "Mamba2Mixer", "n_groups 3", "heads 4");
  bad = tiny_options();
  bad.A_init_min = 0;
  EXPECT_SSM_ERROR(Mamba2Mixer(bad, g), "Mamba2Mixer", "A_init_min");
}

TEST(Mamba2LM, PrefillPlusStepsEqualsForward) {
  for (DType dt : {DType::F64, DType::F32}) {
    Generator g(22);
    MambaLM lm(tiny_lm_config(), g, dt);
    ssm::testing::perturb_parameters(lm, 23, 0.1);
    const Tensor ids = random_ids(2, 13, 19, 24);
    const Tensor full = lm.forward(ids);  // (2, 13, 19)
    const double bound = dt == DType::F64 ? 1e-10 : 1e-4;
    for (int64_t p : {1, 3, 9}) {
      auto [logits, cache] = lm.prefill(ids.narrow(1, 0, p));
      EXPECT_LE(rel_error(logits, full.select(1, p - 1)), bound);
      for (int64_t l = p; l < 13; ++l)
        EXPECT_LE(rel_error(lm.step(ids.select(1, l).contiguous(), cache), full.select(1, l)),
                  bound)
            << "prefill " << p << " step " << l;
    }
  }
}

TEST(Mamba2LM, NamesAndGradientsReachEveryParameter) {
  Generator g(25);
  MambaLM lm(tiny_lm_config(), g, DType::F64);
  const auto sd = lm.state_dict();
  for (const char* name :
       {"backbone.embeddings.weight", "backbone.layers.1.norm.weight",
        "backbone.layers.1.mixer.in_proj.weight", "backbone.layers.0.mixer.conv1d.weight",
        "backbone.layers.0.mixer.conv1d.bias", "backbone.layers.0.mixer.dt_bias",
        "backbone.layers.0.mixer.A_log", "backbone.layers.0.mixer.D",
        "backbone.layers.0.mixer.norm.weight", "backbone.layers.0.mixer.out_proj.weight",
        "backbone.norm_f.weight"})
    EXPECT_TRUE(sd.count(name)) << name;
  EXPECT_EQ(sd.size(), 1u + 2 * 9 + 1);
  EXPECT_STREQ(lm.backbone->layers[0]->mixer->arch(), "mamba2");
  lm.forward(random_ids(1, 5, 19, 26)).backward(ssm::testing::random({1, 5, 19}, DType::F64, 27));
  for (const auto& p : lm.named_parameters()) {
    ASSERT_TRUE(p.tensor.grad().defined()) << p.name;
    double norm = 0;
    for (double v : p.tensor.grad().to_vector()) norm += v * v;
    EXPECT_GT(norm, 0) << p.name;
  }
}

TEST(Mamba2LM, UnknownArch) {
  Generator g(28);
  MambaLMConfig c = tiny_lm_config();
  c.arch = "mamba4";
  EXPECT_SSM_ERROR(MambaLM(c, g), "unknown arch 'mamba4'", "mamba1, mamba2 or mamba3");
}
