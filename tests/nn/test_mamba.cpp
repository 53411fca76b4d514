// Mamba-1 mixer and language model: forward vs a plain float64 loop written from DESIGN §5,
// prefill + decode steps vs one parallel forward, finite-difference gradients, bad input.
#include <cmath>

#include "ssm/autograd/gradcheck.h"
#include "ssm/nn/mamba.h"
#include "ssm/nn/mamba_lm.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/shape_ops.h"
#include "support/perturb.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::nn;
using ssm::testing::rel_error;

namespace {

MambaOptions tiny_options() {
  MambaOptions o;
  o.d_model = 4;
  o.d_state = 3;
  o.d_conv = 3;
  o.expand = 2;
  o.dt_rank = 2;
  return o;
}

double silu_ref(double v) {
  return v / (1.0 + std::exp(-v));
}
double softplus_ref(double v) {
  return v > 20 ? v : std::log1p(std::exp(v));
}

// The mixer as plainly as possible, in double, from the equations.
Tensor mixer_reference(const MambaMixer& m, const Tensor& x) {
  const auto& o = m.options;
  const int64_t Bn = x.size(0), L = x.size(1), Dm = o.d_model, Di = o.d_inner(), N = o.d_state,
                R = o.resolved_dt_rank(), K = o.d_conv;
  auto W = [](const Tensor& t) { return t.to_vector(); };
  const auto win = W(m.in_proj->weight), cw = W(m.conv1d->weight), cb = W(m.conv1d->bias),
             wx = W(m.x_proj->weight), wdt = W(m.dt_proj->weight), bdt = W(m.dt_proj->bias),
             alog = W(m.A_log), dskip = W(m.D), wout = W(m.out_proj->weight), xv = W(x);
  Tensor out = Tensor::zeros({Bn, L, Dm}, DType::F64);
  for (int64_t b = 0; b < Bn; ++b) {
    std::vector<std::vector<double>> xin(L, std::vector<double>(Di)), z = xin, u = xin;
    for (int64_t l = 0; l < L; ++l)
      for (int64_t j = 0; j < 2 * Di; ++j) {
        double s = 0;
        for (int64_t k = 0; k < Dm; ++k) s += win[j * Dm + k] * xv[(b * L + l) * Dm + k];
        (j < Di ? xin[l][j] : z[l][j - Di]) = s;
      }
    for (int64_t l = 0; l < L; ++l)
      for (int64_t d = 0; d < Di; ++d) {
        double s = cb[d];
        for (int64_t j = 0; j < K; ++j) {
          const int64_t t = l - (K - 1) + j;
          if (t >= 0) s += cw[d * K + j] * xin[t][d];
        }
        u[l][d] = silu_ref(s);
      }
    std::vector<double> h(Di * N, 0.0);
    for (int64_t l = 0; l < L; ++l) {
      std::vector<double> dbl(R + 2 * N, 0.0);
      for (int64_t e = 0; e < R + 2 * N; ++e)
        for (int64_t d = 0; d < Di; ++d) dbl[e] += wx[e * Di + d] * u[l][d];
      std::vector<double> y(Di);
      for (int64_t d = 0; d < Di; ++d) {
        double raw = bdt[d];
        for (int64_t r = 0; r < R; ++r) raw += wdt[d * R + r] * dbl[r];
        const double dt = softplus_ref(raw);
        double acc = dskip[d] * u[l][d];
        for (int64_t n = 0; n < N; ++n) {
          const double A = -std::exp(alog[d * N + n]);
          h[d * N + n] = std::exp(dt * A) * h[d * N + n] + dt * dbl[R + n] * u[l][d];
          acc += dbl[R + N + n] * h[d * N + n];
        }
        y[d] = acc * silu_ref(z[l][d]);
      }
      for (int64_t m2 = 0; m2 < Dm; ++m2) {
        double s = 0;
        for (int64_t d = 0; d < Di; ++d) s += wout[m2 * Di + d] * y[d];
        out.set({b, l, m2}, s);
      }
    }
  }
  return out;
}

MambaLMConfig tiny_lm_config() {
  MambaLMConfig c;
  c.mixer = tiny_options();
  c.mixer.d_model = 8;
  c.mixer.d_state = 4;
  c.mixer.d_conv = 4;
  c.mixer.dt_rank = 0;  // auto: ceil(8 / 16) = 1
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

TEST(MambaMixer, InitFollowsDesign) {
  Generator g(1);
  MambaOptions o = tiny_options();
  o.d_model = 40;  // dt_rank auto = 3
  o.dt_rank = 0;
  MambaMixer m(o, g, DType::F64);
  EXPECT_EQ(m.dt_proj->weight.size(1), 3);
  EXPECT_EQ(shape_str(m.conv1d->weight.shape()), "(80, 1, 3)");
  EXPECT_EQ(shape_str(m.x_proj->weight.shape()), "(9, 80)");  // R + 2N
  EXPECT_NEAR(m.A_log.at({5, 2}), std::log(3.0), 1e-15);
  EXPECT_EQ(m.D.at({7}), 1.0);
  for (int64_t d = 0; d < 80; ++d) {
    const double dt = softplus_ref(m.dt_proj->bias.at({d}));
    EXPECT_GE(dt, 1e-3 * (1 - 1e-12));
    EXPECT_LE(dt, 1e-1 * (1 + 1e-12));
    EXPECT_LE(std::abs(m.dt_proj->weight.at({d, 1})), 1 / std::sqrt(3.0));
  }
  int ssm_kind = 0;
  for (const auto& p : m.named_parameters())
    if (p.kind == ParamKind::SSM) {
      ++ssm_kind;
      EXPECT_TRUE(p.name == "A_log" || p.name == "D" || p.name == "dt_proj.bias") << p.name;
    }
  EXPECT_EQ(ssm_kind, 3);
  EXPECT_TRUE(m.state_dict().count("conv1d.weight"));
  EXPECT_TRUE(m.state_dict().count("dt_proj.bias"));
}

TEST(MambaMixer, ForwardMatchesPlainLoopF64) {
  Generator g(2);
  MambaMixer m(tiny_options(), g, DType::F64);
  ssm::testing::perturb_parameters(m, 3, 0.3);
  const Tensor x = ssm::testing::random({2, 7, 4}, DType::F64, 4);
  EXPECT_LE(rel_error(m.forward(x), mixer_reference(m, x)), 1e-12);
}

TEST(MambaMixer, Float32AgreesWithFloat64) {
  Generator g64(5), g32(5);
  MambaMixer m64(tiny_options(), g64, DType::F64), m32(tiny_options(), g32, DType::F32);
  ssm::testing::perturb_parameters(m64, 6, 0.3);
  for (auto& [name, t] : m32.state_dict()) t.copy_(m64.state_dict().at(name));
  const Tensor x = ssm::testing::random({2, 9, 4}, DType::F64, 7);
  EXPECT_LE(rel_error(m32.forward(x.to(DType::F32)), m64.forward(x)), 1e-5);
}

TEST(MambaMixer, PrefillThenStepsEqualsForward) {
  for (DType dt : {DType::F64, DType::F32}) {
    Generator g(8);
    MambaMixer m(tiny_options(), g, dt);
    ssm::testing::perturb_parameters(m, 9, 0.3);
    const Tensor x = ssm::testing::random({3, 11, 4}, dt, 10);
    const Tensor full = m.forward(x);
    const double bound = dt == DType::F64 ? 1e-10 : 1e-5;
    for (int64_t split_at : {1, 2, 6}) {  // shorter and longer than d_conv − 1
      MambaCache cache;
      const Tensor head = m.prefill(x.narrow(1, 0, split_at), cache);
      EXPECT_LE(rel_error(head, full.narrow(1, 0, split_at)), bound);
      for (int64_t l = split_at; l < 11; ++l)
        EXPECT_LE(rel_error(m.step(x.select(1, l), cache), full.select(1, l)), bound)
            << "split " << split_at << " step " << l;
    }
    MambaCache empty = m.init_cache(3);
    for (int64_t l = 0; l < 11; ++l)
      EXPECT_LE(rel_error(m.step(x.select(1, l), empty), full.select(1, l)), bound);
  }
}

TEST(MambaMixer, StepDerivesAOncePerCacheAndPrefillRederivesIt) {
  Generator g(30);
  MambaMixer m(tiny_options(), g, DType::F64);
  ssm::testing::perturb_parameters(m, 31, 0.3);
  const Tensor x = ssm::testing::random({2, 6, 4}, DType::F64, 32);
  MambaCache cache;
  m.prefill(x.narrow(1, 0, 3), cache);
  EXPECT_TRUE(cache.derived.empty());
  m.step(x.select(1, 3), cache);
  ASSERT_TRUE(cache.derived.count("A"));
  const Tensor A = cache.derived.at("A");
  EXPECT_LE(rel_error(A, neg(exp(m.A_log.detach()))), 1e-15);
  m.step(x.select(1, 4), cache);
  EXPECT_EQ(cache.derived.at("A").raw_data(), A.raw_data());  // reused, not recomputed
  // New weights, new sequence: prefill drops the old A, so the steps follow the new weights.
  { m.A_log.detach().copy_(ssm::testing::random(m.A_log.shape(), DType::F64, 33)); }
  const Tensor full = m.forward(x);
  m.prefill(x.narrow(1, 0, 3), cache);
  EXPECT_TRUE(cache.derived.empty());
  for (int64_t l = 3; l < 6; ++l)
    EXPECT_LE(rel_error(m.step(x.select(1, l), cache), full.select(1, l)), 1e-10) << l;
}

TEST(MambaMixer, GradcheckInputAndParameters) {
  Generator g(11);
  MambaMixer m(tiny_options(), g, DType::F64);
  ssm::testing::perturb_parameters(m, 12, 0.3);
  Tensor x = ssm::testing::random({2, 5, 4}, DType::F64, 13, true);
  std::vector<Tensor> inputs = {x};
  for (const auto& p : m.named_parameters()) inputs.push_back(p.tensor);
  ASSERT_EQ(inputs.size(), 10u);  // x + in/x/out proj, conv w/b, dt w/b, A_log, D
  auto result = gradcheck([&](const std::vector<Tensor>& in) { return m.forward(in[0]); }, inputs);
  EXPECT_TRUE(result.ok) << result.report;
  EXPECT_LE(result.worst_relative_error, 1e-6) << result.report;
}

TEST(MambaMixer, BadInput) {
  Generator g(14);
  MambaMixer m(tiny_options(), g, DType::F64);
  EXPECT_SSM_ERROR(m.forward(Tensor::zeros({2, 5, 3}, DType::F64)), "MambaMixer.forward", "'x'",
                   "(B, L, 4)", "(2, 5, 3)");
  EXPECT_SSM_ERROR(m.forward(Tensor::zeros({2, 5, 4}, DType::F32)), "MambaMixer.forward",
                   "float64");
  MambaCache cache = m.init_cache(2);
  EXPECT_SSM_ERROR(m.step(Tensor::zeros({3, 4}, DType::F64), cache), "MambaMixer.step",
                   "cache.conv_state", "(3, 8, 2)", "(2, 8, 2)");
  MambaOptions bad = tiny_options();
  bad.d_conv = 1;
  EXPECT_SSM_ERROR(MambaMixer(bad, g), "MambaMixer", "d_conv", "got 1");
}

TEST(MambaLM, ForwardIsResidualStackWithTiedHead) {
  Generator g(15);
  MambaLM lm(tiny_lm_config(), g, DType::F64);
  ssm::testing::perturb_parameters(lm, 16, 0.1);
  const Tensor ids = random_ids(2, 6, 19, 17);
  // By hand from the blocks: h = emb[ids]; h += mixer(norm(h)); logits = norm_f(h) · Eᵀ.
  const auto E = lm.backbone->embeddings->weight;
  Tensor h = Tensor::empty({2, 6, 8}, DType::F64);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t l = 0; l < 6; ++l) h.select(0, b).select(0, l).copy_(E.select(0, ids.at({b, l})));
  auto rms = [](const Tensor& t, const Tensor& w) {
    Tensor out = t.clone().detach();
    const int64_t D = t.size(-1), rows = t.numel() / D;
    auto v = t.contiguous().to_vector();
    for (int64_t r = 0; r < rows; ++r) {
      double ms = 0;
      for (int64_t d = 0; d < D; ++d) ms += v[r * D + d] * v[r * D + d];
      const double inv = 1 / std::sqrt(ms / D + 1e-5);
      for (int64_t d = 0; d < D; ++d)
        out.data<double>()[r * D + d] = v[r * D + d] * inv * w.at({d});
    }
    return out;
  };
  for (const auto& block : lm.backbone->layers)
    h = add(h, mixer_reference(dynamic_cast<const MambaMixer&>(*block->mixer),
                               rms(h, block->norm->weight)));
  const Tensor hf = rms(h, lm.backbone->norm_f->weight);
  Tensor ref = Tensor::zeros({2, 6, 19}, DType::F64);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t l = 0; l < 6; ++l)
      for (int64_t v = 0; v < 19; ++v) {
        double s = 0;
        for (int64_t d = 0; d < 8; ++d) s += hf.at({b, l, d}) * E.at({v, d});
        ref.set({b, l, v}, s);
      }
  EXPECT_LE(rel_error(lm.forward(ids), ref), 1e-12);
  EXPECT_FALSE(lm.state_dict().count("lm_head.weight"));
  EXPECT_TRUE(lm.state_dict().count("backbone.layers.1.mixer.conv1d.weight"));
  EXPECT_TRUE(lm.state_dict().count("backbone.embeddings.weight"));
  EXPECT_TRUE(lm.state_dict().count("backbone.norm_f.weight"));
}

TEST(MambaLM, PrefillPlusStepsEqualsForward) {
  for (DType dt : {DType::F64, DType::F32}) {
    Generator g(18);
    MambaLM lm(tiny_lm_config(), g, dt);
    ssm::testing::perturb_parameters(lm, 19, 0.1);
    const Tensor ids = random_ids(2, 13, 19, 20);
    const Tensor full = lm.forward(ids);  // (2, 13, 19)
    const double bound = dt == DType::F64 ? 1e-10 : 1e-4;
    for (int64_t p : {1, 3, 8}) {
      auto [logits, cache] = lm.prefill(ids.narrow(1, 0, p));
      EXPECT_LE(rel_error(logits, full.select(1, p - 1)), bound);
      for (int64_t l = p; l < 13; ++l)
        EXPECT_LE(rel_error(lm.step(ids.select(1, l).contiguous(), cache), full.select(1, l)),
                  bound)
            << "prefill " << p << " step " << l;
    }
    MambaLMCache cache = lm.init_cache(2);
    for (int64_t l = 0; l < 13; ++l)
      EXPECT_LE(rel_error(lm.step(ids.select(1, l).contiguous(), cache), full.select(1, l)), bound);
  }
}

TEST(MambaLM, GradientsReachEveryParameter) {
  Generator g(21);
  MambaLM lm(tiny_lm_config(), g, DType::F64);
  lm.forward(random_ids(1, 5, 19, 22)).backward(ssm::testing::random({1, 5, 19}, DType::F64, 23));
  for (const auto& p : lm.named_parameters()) {
    ASSERT_TRUE(p.tensor.grad().defined()) << p.name;
    double norm = 0;
    for (double v : p.tensor.grad().to_vector()) norm += v * v;
    EXPECT_GT(norm, 0) << p.name;
  }
}

TEST(MambaLM, BadInput) {
  Generator g(24);
  MambaLM lm(tiny_lm_config(), g, DType::F32);
  EXPECT_SSM_ERROR(lm.forward(Tensor::zeros({5}, DType::I64)), "MambaLM.forward", "'ids'", "(B, L)",
                   "(5)");
  EXPECT_SSM_ERROR(lm.forward(Tensor::zeros({1, 5}, DType::F32)), "MambaLM.forward", "int");
  auto cache = lm.init_cache(1);
  cache.layers.pop_back();
  EXPECT_SSM_ERROR(lm.step(Tensor::zeros({1}, DType::I64), cache), "MambaLM.step", "cache",
                   "2 layers", "got 1");
  EXPECT_SSM_ERROR(lm.forward(Tensor::full({1, 2}, 19, DType::I64)), "19");
}
