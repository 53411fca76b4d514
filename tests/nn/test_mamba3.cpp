// Mamba-3 (SISO) mixer: forward vs a plain float64 loop written from the equations (reference
// mamba_ssm Mamba3 parameterisation), prefill + decode steps vs one parallel forward,
// finite-difference gradients of the input and every parameter, float32 vs float64, bad input.
#include <cmath>
#include <numbers>

#include "ssm/autograd/gradcheck.h"
#include "ssm/nn/mamba3.h"
#include "ssm/nn/mamba_lm.h"
#include "ssm/ops/elementwise.h"
#include "support/perturb.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::nn;
using ssm::testing::rel_error;

namespace {

Mamba3Options tiny_options() {
  Mamba3Options o;
  o.d_model = 4;
  o.d_state = 8;   // rope_fraction 0.5: S = 2 angles turn entries 0..3, entries 4..7 do not
  o.expand = 2;    // D_inner = 8
  o.head_dim = 2;  // H = 4
  o.n_groups = 2;  // heads 0, 1 read group 0; heads 2, 3 group 1
  o.chunk_size = 4;
  return o;
}

double silu_ref(double v) {
  return v / (1.0 + std::exp(-v));
}
double sigmoid_ref(double v) {
  return 1.0 / (1.0 + std::exp(-v));
}
double softplus_ref(double v) {
  return v > 20 ? v : std::log1p(std::exp(v));
}

// The mixer as plainly as possible, in double, one token at a time from the equations.
Tensor mixer_reference(const Mamba3Mixer& m, const Tensor& x) {
  const auto& o = m.options;
  const int64_t Bn = x.size(0), L = x.size(1), Dm = o.d_model, Di = o.d_inner();
  const int64_t H = o.n_heads(), P = o.head_dim, N = o.d_state, G = o.n_groups;
  const int64_t S = o.n_angles(), E = o.d_in_proj();
  // Offsets of z, x, B, C, dd_dt, dd_A, trap, angles in the in_proj output.
  const int64_t oz = 0, ox = Di, oB = 2 * Di, oC = oB + G * N, odt = oC + G * N, oA = odt + H,
                otrap = oA + H, oang = otrap + H;
  auto W = [](const Tensor& t) { return t.to_vector(); };
  const auto win = W(m.in_proj->weight), dtb = W(m.dt_bias), Bb = W(m.B_bias), Cb = W(m.C_bias),
             Bw = W(m.B_norm->weight), Cw = W(m.C_norm->weight), Dk = W(m.D),
             wout = W(m.out_proj->weight), xv = W(x);
  Tensor out = Tensor::zeros({Bn, L, Dm}, DType::F64);
  for (int64_t b = 0; b < Bn; ++b) {
    std::vector<double> state(H * P * N, 0.0), prev_B(H * N, 0.0), prev_x(H * P, 0.0),
        phi(H * S, 0.0);
    for (int64_t l = 0; l < L; ++l) {
      std::vector<double> proj(E, 0.0), y(Di);
      for (int64_t j = 0; j < E; ++j)
        for (int64_t k = 0; k < Dm; ++k) proj[j] += win[j * Dm + k] * xv[(b * L + l) * Dm + k];
      // RMS-normalised group g of B or C, times the norm weight, plus head h's bias.
      auto norm_bias = [&](int64_t off, int64_t g, const std::vector<double>& w,
                           const std::vector<double>& bias, int64_t h) {
        double ms = 0;
        for (int64_t n = 0; n < N; ++n) ms += proj[off + g * N + n] * proj[off + g * N + n];
        const double inv = 1.0 / std::sqrt(ms / N + o.norm_eps);
        std::vector<double> v(N);
        for (int64_t n = 0; n < N; ++n) v[n] = proj[off + g * N + n] * inv * w[n] + bias[h * N + n];
        return v;
      };
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / (H / G);
        const double dt = softplus_ref(proj[odt + h] + dtb[h]);
        const double A = -std::max(softplus_ref(proj[oA + h]), o.A_floor);
        const double lam = sigmoid_ref(proj[otrap + h]);
        std::vector<double> Bh = norm_bias(oB, g, Bw, Bb, h), Ch = norm_bias(oC, g, Cw, Cb, h);
        for (int64_t s = 0; s < S; ++s) {
          phi[h * S + s] += dt * std::numbers::pi * std::tanh(proj[oang + s]);
          const double c = std::cos(phi[h * S + s]), sn = std::sin(phi[h * S + s]);
          for (std::vector<double>* v : {&Bh, &Ch}) {
            const double v0 = (*v)[2 * s], v1 = (*v)[2 * s + 1];
            (*v)[2 * s] = v0 * c - v1 * sn;
            (*v)[2 * s + 1] = v0 * sn + v1 * c;
          }
        }
        const double alpha = std::exp(A * dt), beta = (1 - lam) * dt * alpha, gamma = lam * dt;
        for (int64_t p = 0; p < P; ++p) {
          const double xp = proj[ox + h * P + p], zp = proj[oz + h * P + p];
          double acc = 0;
          for (int64_t n = 0; n < N; ++n) {
            double& s = state[(h * P + p) * N + n];
            s = alpha * s + beta * prev_x[h * P + p] * prev_B[h * N + n] + gamma * xp * Bh[n];
            acc += s * Ch[n];
          }
          y[h * P + p] = (acc + Dk[h] * xp) * silu_ref(zp);
          prev_x[h * P + p] = xp;
        }
        for (int64_t n = 0; n < N; ++n) prev_B[h * N + n] = Bh[n];
      }
      for (int64_t k = 0; k < Dm; ++k) {
        double s = 0;
        for (int64_t d = 0; d < Di; ++d) s += wout[k * Di + d] * y[d];
        out.set({b, l, k}, s);
      }
    }
  }
  return out;
}

MambaLMConfig tiny_lm_config() {
  MambaLMConfig c;
  c.arch = "mamba3";
  c.mamba3 = tiny_options();
  c.mamba3.d_model = 8;  // D_inner 16: 8 heads of 2 in 2 groups
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

TEST(Mamba3Mixer, InitFollowsReference) {
  Generator g(1);
  Mamba3Options o = tiny_options();
  o.d_model = 16;  // D_inner 32, H = 16 heads of 2
  o.n_groups = 1;
  Mamba3Mixer m(o, g, DType::F64);
  EXPECT_EQ(o.n_angles(), 2);
  // z, x (32 each), B, C (8 each), dd_dt, dd_A, trap (16 each), 2 angles.
  EXPECT_EQ(shape_str(m.in_proj->weight.shape()), "(130, 16)");
  EXPECT_EQ(shape_str(m.out_proj->weight.shape()), "(16, 32)");
  EXPECT_EQ(shape_str(m.B_bias.shape()), "(16, 1, 8)");
  EXPECT_EQ(shape_str(m.C_norm->weight.shape()), "(8)");
  EXPECT_EQ(m.B_bias.at({3, 0, 5}), 1.0);
  EXPECT_EQ(m.C_bias.at({15, 0, 0}), 1.0);
  EXPECT_EQ(m.D.at({7}), 1.0);
  for (int64_t h = 0; h < 16; ++h) {
    const double dt = softplus_ref(m.dt_bias.at({h}));
    EXPECT_GE(dt, 1e-3 * (1 - 1e-12));
    EXPECT_LE(dt, 1e-1 * (1 + 1e-12));
  }
  const auto sd = m.state_dict();
  for (const char* name : {"in_proj.weight", "dt_bias", "B_bias", "C_bias", "B_norm.weight",
                           "C_norm.weight", "D", "out_proj.weight"})
    EXPECT_TRUE(sd.count(name)) << name;
  EXPECT_EQ(sd.size(), 8u);
  EXPECT_STREQ(m.arch(), "mamba3");
  o.rope_fraction = 1.0;
  EXPECT_EQ(o.n_angles(), 4);
  o.d_state = 7;  // ⌊7·1⌋ = 7, made even: 3 pairs
  EXPECT_EQ(o.n_angles(), 3);
}

TEST(Mamba3Mixer, ForwardMatchesPlainLoopF64) {
  for (double rope_fraction : {0.5, 1.0}) {
    Mamba3Options o = tiny_options();
    o.rope_fraction = rope_fraction;
    Generator g(2);
    Mamba3Mixer m(o, g, DType::F64);
    ssm::testing::perturb_parameters(m, 3, 0.3);
    const Tensor x = ssm::testing::random({2, 9, 4}, DType::F64, 4);
    EXPECT_LE(rel_error(m.forward(x), mixer_reference(m, x)), 1e-12) << rope_fraction;
  }
}

TEST(Mamba3Mixer, Float32AgreesWithFloat64) {
  Generator g64(5), g32(5);
  Mamba3Mixer m64(tiny_options(), g64, DType::F64), m32(tiny_options(), g32, DType::F32);
  ssm::testing::perturb_parameters(m64, 6, 0.3);
  for (auto& [name, t] : m32.state_dict()) t.copy_(m64.state_dict().at(name));
  const Tensor x = ssm::testing::random({2, 40, 4}, DType::F64, 7);
  EXPECT_LE(rel_error(m32.forward(x.to(DType::F32)), m64.forward(x)), 1e-5);
}

TEST(Mamba3Mixer, PrefillThenStepsEqualsForward) {
  for (DType dt : {DType::F64, DType::F32}) {
    Generator g(8);
    Mamba3Mixer m(tiny_options(), g, dt);
    ssm::testing::perturb_parameters(m, 9, 0.3);
    const Tensor x = ssm::testing::random({3, 11, 4}, dt, 10);
    const Tensor full = m.forward(x);
    const double bound = dt == DType::F64 ? 1e-12 : 1e-5;
    for (int64_t split_at : {1, 2, 6}) {
      MixerCache cache;
      const Tensor head = m.prefill(x.narrow(1, 0, split_at), cache);
      EXPECT_LE(rel_error(head, full.narrow(1, 0, split_at)), bound);
      for (int64_t l = split_at; l < 11; ++l)
        EXPECT_LE(rel_error(m.step(x.select(1, l), cache), full.select(1, l)), bound)
            << "split " << split_at << " step " << l;
    }
    MixerCache empty = m.init_cache(3);
    for (int64_t l = 0; l < 11; ++l)
      EXPECT_LE(rel_error(m.step(x.select(1, l), empty), full.select(1, l)), bound);
  }
}

TEST(Mamba3Mixer, GradcheckInputAndParameters) {
  Generator g(11);
  Mamba3Mixer m(tiny_options(), g, DType::F64);
  ssm::testing::perturb_parameters(m, 12, 0.3);
  Tensor x = ssm::testing::random({2, 5, 4}, DType::F64, 13, true);
  std::vector<Tensor> inputs = {x};
  for (const auto& p : m.named_parameters()) inputs.push_back(p.tensor);
  ASSERT_EQ(inputs.size(), 9u);  // x + in/out proj, dt_bias, B/C bias, B/C norm, D
  auto result = gradcheck([&](const std::vector<Tensor>& in) { return m.forward(in[0]); }, inputs);
  EXPECT_TRUE(result.ok) << result.report;
  EXPECT_LE(result.worst_relative_error, 1e-6) << result.report;
}

TEST(Mamba3Mixer, BadInput) {
  Generator g(14);
  Mamba3Mixer m(tiny_options(), g, DType::F64);
  EXPECT_SSM_ERROR(m.forward(Tensor::zeros({2, 5, 3}, DType::F64)), "Mamba3Mixer.forward", "'x'",
                   "(B, L, 4)", "(2, 5, 3)");
  EXPECT_SSM_ERROR(m.forward(Tensor::zeros({2, 5, 4}, DType::F32)), "Mamba3Mixer.forward",
                   "float64", "float32");
  MixerCache cache = m.init_cache(2);
  EXPECT_SSM_ERROR(m.step(Tensor::zeros({3, 4}, DType::F64), cache), "Mamba3Mixer.step",
                   "cache.angle_state", "(3, 4, 2)", "(2, 4, 2)");
  cache.set("k_state", Tensor::zeros({2, 4, 7}, DType::F64));
  EXPECT_SSM_ERROR(m.step(Tensor::zeros({2, 4}, DType::F64), cache), "Mamba3Mixer.step",
                   "cache.k_state", "(2, 4, 8)", "(2, 4, 7)");
  cache.set("k_state", Tensor::zeros({2, 4, 8}, DType::F64));
  cache.tensors.erase("v_state");
  EXPECT_SSM_ERROR(m.step(Tensor::zeros({2, 4}, DType::F64), cache), "v_state");
  EXPECT_SSM_ERROR(m.step(Tensor::zeros({2, 5}, DType::F64), cache), "Mamba3Mixer.step", "'x_t'",
                   "(B, 4)", "(2, 5)");
  Mamba3Options bad = tiny_options();
  bad.n_groups = 3;
  EXPECT_SSM_ERROR(Mamba3Mixer(bad, g), "Mamba3Mixer", "n_groups = 3", "4 heads");
  bad = tiny_options();
  bad.head_dim = 3;
  EXPECT_SSM_ERROR(Mamba3Mixer(bad, g), "Mamba3Mixer", "head_dim = 3");
  bad = tiny_options();
  bad.d_state = 1;
  EXPECT_SSM_ERROR(Mamba3Mixer(bad, g), "Mamba3Mixer", "rope_fraction", "d_state = 1");
  // NaN reaching dt (through the input) is refused by the scan with the position.
  Tensor x = ssm::testing::random({1, 3, 4}, DType::F64, 15);
  x.set({0, 1, 2}, std::nan(""));
  EXPECT_SSM_ERROR(m.forward(x), "mamba3", "nan");
}

TEST(Mamba3LM, PrefillPlusStepsEqualsForward) {
  for (DType dt : {DType::F64, DType::F32}) {
    Generator g(22);
    MambaLM lm(tiny_lm_config(), g, dt);
    ssm::testing::perturb_parameters(lm, 23, 0.1);
    const Tensor ids = random_ids(2, 13, 19, 24);
    const Tensor full = lm.forward(ids);  // (2, 13, 19)
    const double bound = dt == DType::F64 ? 1e-12 : 1e-5;
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

TEST(Mamba3LM, NamesAndGradientsReachEveryParameter) {
  Generator g(25);
  MambaLM lm(tiny_lm_config(), g, DType::F64);
  const auto sd = lm.state_dict();
  for (const char* name :
       {"backbone.embeddings.weight", "backbone.layers.1.norm.weight",
        "backbone.layers.1.mixer.in_proj.weight", "backbone.layers.0.mixer.dt_bias",
        "backbone.layers.0.mixer.B_bias", "backbone.layers.0.mixer.C_bias",
        "backbone.layers.0.mixer.B_norm.weight", "backbone.layers.0.mixer.C_norm.weight",
        "backbone.layers.0.mixer.D", "backbone.layers.0.mixer.out_proj.weight",
        "backbone.norm_f.weight"})
    EXPECT_TRUE(sd.count(name)) << name;
  EXPECT_EQ(sd.size(), 1u + 2 * 9 + 1);
  EXPECT_STREQ(lm.backbone->layers[0]->mixer->arch(), "mamba3");
  lm.forward(random_ids(1, 5, 19, 26)).backward(ssm::testing::random({1, 5, 19}, DType::F64, 27));
  for (const auto& p : lm.named_parameters()) {
    ASSERT_TRUE(p.tensor.grad().defined()) << p.name;
    double norm = 0;
    for (double v : p.tensor.grad().to_vector()) norm += v * v;
    EXPECT_GT(norm, 0) << p.name;
  }
}
