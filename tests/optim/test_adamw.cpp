#include <cmath>

#include "ssm/optim/adamw.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using namespace ssm::optim;
using ssm::testing::rel_error;

namespace {

// AdamW written out plainly in double for one parameter (the formula of torch.optim.AdamW).
struct PlainAdamW {
  explicit PlainAdamW(std::vector<double> init) : p(std::move(init)) {}
  std::vector<double> p, m, v;
  int64_t t = 0;
  void step(const std::vector<double>& g, double lr, double wd, double b1, double b2, double eps) {
    ++t;
    if (m.empty()) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0);
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] = p[i] * (1 - lr * wd);
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const double m_hat = m[i] / (1 - std::pow(b1, t));
      const double v_hat = v[i] / (1 - std::pow(b2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
};

Tensor param(const Shape& shape, uint64_t seed, DType dtype = DType::F64) {
  return ssm::testing::random(shape, dtype, seed, /*requires_grad=*/true);
}

}  // namespace

TEST(AdamW, MatchesPlainFloat64OverStepsWithScheduleAndGroups) {
  Tensor w = param({3, 4}, 1), b = param({4}, 2), a = param({5}, 3);
  std::vector<ParamGroup> groups{{{w}, 0.01, 0.1, "decay", {"w"}},
                                 {{b}, 0.01, 0.0, "no_decay", {"b"}},
                                 {{a}, 0.003, 0.0, "ssm", {"a"}}};
  AdamWOptions opt{0.8, 0.95, 1e-6};
  AdamW adam(groups, opt);
  PlainAdamW rw(w.to_vector()), rb(b.to_vector()), ra(a.to_vector());
  const double scales[] = {0.5, 1.0, 0.7, 0.2, 1.3};
  for (int s = 0; s < 5; ++s) {
    Tensor gw = ssm::testing::random(w.shape(), DType::F64, 100 + s);
    Tensor gb = ssm::testing::random(b.shape(), DType::F64, 200 + s);
    Tensor ga = ssm::testing::random(a.shape(), DType::F64, 300 + s);
    w.set_grad(gw), b.set_grad(gb), a.set_grad(ga);
    adam.set_lr_scale(scales[s]);
    adam.step();
    rw.step(gw.to_vector(), 0.01 * scales[s], 0.1, 0.8, 0.95, 1e-6);
    rb.step(gb.to_vector(), 0.01 * scales[s], 0.0, 0.8, 0.95, 1e-6);
    ra.step(ga.to_vector(), 0.003 * scales[s], 0.0, 0.8, 0.95, 1e-6);
  }
  EXPECT_LT(rel_error(w, Tensor::from_vector(rw.p, w.shape(), DType::F64)), 1e-13);
  EXPECT_LT(rel_error(b, Tensor::from_vector(rb.p, b.shape(), DType::F64)), 1e-13);
  EXPECT_LT(rel_error(a, Tensor::from_vector(ra.p, a.shape(), DType::F64)), 1e-13);
}

TEST(AdamW, MatchesTorchAdamWWithWeightDecay) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  const int steps = 6;
  Tensor p = param({7}, 11);
  Tensor init = p.clone().detach();
  Tensor grads = ssm::testing::random({steps, 7}, DType::F64, 12);
  std::vector<double> lrs{0.02, 0.05, 0.05, 0.03, 0.01, 0.04};
  const double wd = 0.2, b1 = 0.85, b2 = 0.98, eps = 1e-7;
  AdamW adam({{{p}, 0.1, wd, "all", {}}}, {b1, b2, eps});
  std::vector<double> ours;
  for (int s = 0; s < steps; ++s) {
    p.set_grad(grads.select(0, s).contiguous());
    adam.set_lr_scale(lrs[s] / 0.1);
    adam.step();
    for (double x : p.to_vector()) ours.push_back(x);
  }
  auto out = ssm::testing::run_torch(
      "adamw_ref.py", {{"param", init},
                       {"grads", grads},
                       {"lrs", Tensor::from_vector(lrs, {steps}, DType::F64)},
                       {"hyper", Tensor::from_vector({wd, b1, b2, eps}, {4}, DType::F64)}});
  EXPECT_LT(rel_error(Tensor::from_vector(ours, {steps, 7}, DType::F64), out.at("params")), 1e-12);
}

TEST(AdamW, Float32AgreesWithFloat64) {
  Tensor p64 = param({64}, 21);
  Tensor p32 = p64.detach().to(DType::F32).requires_grad_();
  AdamW a64({{{p64}, 1e-2, 0.05, "g", {}}}), a32({{{p32}, 1e-2, 0.05, "g", {}}});
  for (int s = 0; s < 4; ++s) {
    Tensor g = ssm::testing::random({64}, DType::F64, 30 + s);
    p64.set_grad(g);
    p32.set_grad(g.to(DType::F32));
    a64.step();
    a32.step();
  }
  EXPECT_LT(rel_error(p32.to(DType::F64), p64), 1e-6);
}

TEST(AdamW, SkipsParametersWithoutGradient) {
  Tensor a = param({3}, 1), b = param({3}, 2);
  const auto b_before = b.to_vector();
  AdamW adam({{{a, b}, 0.1, 0.5, "g", {"a", "b"}}});
  a.set_grad(ssm::testing::random({3}, DType::F64, 5));
  adam.step();
  EXPECT_EQ(b.to_vector(), b_before);  // no grad: not even weight decay touches it
  auto state = adam.state_dict();
  EXPECT_EQ(state.count("step.a"), 1u);
  EXPECT_EQ(state.count("step.b"), 0u);
  EXPECT_EQ(state.at("step.a").item(), 1.0);
  adam.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  const auto a_before = a.to_vector();
  adam.step();  // nothing has a gradient now
  EXPECT_EQ(a.to_vector(), a_before);
}

TEST(AdamW, ParamGroupsGetTheirLearningRateAndDecay) {
  std::vector<nn::NamedParameter> named{
      {"enc.weight", param({2, 2}, 1), nn::ParamKind::Weight},
      {"enc.bias", param({2}, 2), nn::ParamKind::NoDecay},
      {"ssm.A_log", param({3}, 3), nn::ParamKind::SSM},
      {"dec.weight", param({2}, 4), nn::ParamKind::Weight},
  };
  auto groups = make_param_groups(named, 0.01, 0.1, 0.001);
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].name, "decay");
  EXPECT_EQ(groups[0].param_names, (std::vector<std::string>{"enc.weight", "dec.weight"}));
  EXPECT_DOUBLE_EQ(groups[0].lr, 0.01);
  EXPECT_DOUBLE_EQ(groups[0].weight_decay, 0.1);
  EXPECT_EQ(groups[1].name, "no_decay");
  EXPECT_EQ(groups[1].param_names, (std::vector<std::string>{"enc.bias"}));
  EXPECT_DOUBLE_EQ(groups[1].lr, 0.01);
  EXPECT_DOUBLE_EQ(groups[1].weight_decay, 0.0);
  EXPECT_EQ(groups[2].name, "ssm");
  EXPECT_DOUBLE_EQ(groups[2].lr, 0.001);
  EXPECT_DOUBLE_EQ(groups[2].weight_decay, 0.0);
  EXPECT_EQ(groups[2].params[0].impl_ptr(), named[2].tensor.impl_ptr());  // same storage

  // With a zero gradient Adam's step is 0, so only decoupled decay moves a parameter:
  // p ← p·(1 − lr·wd) in the decay group, unchanged elsewhere.
  std::vector<std::vector<double>> before;
  for (auto& np : named) {
    before.push_back(np.tensor.to_vector());
    np.tensor.set_grad(Tensor::zeros(np.tensor.shape(), DType::F64));
  }
  AdamW adam(groups);
  adam.set_lr_scale(2.0);
  adam.step();
  for (size_t k = 0; k < named.size(); ++k) {
    const double factor = named[k].kind == nn::ParamKind::Weight ? 1 - 0.02 * 0.1 : 1.0;
    auto after = named[k].tensor.to_vector();
    for (size_t i = 0; i < after.size(); ++i)
      EXPECT_NEAR(after[i], before[k][i] * factor, 1e-15) << named[k].name;
  }
  // Only kinds present make groups.
  auto only_ssm = make_param_groups({named[2]}, 0.01, 0.1, 0.002);
  ASSERT_EQ(only_ssm.size(), 1u);
  EXPECT_EQ(only_ssm[0].name, "ssm");
}

TEST(AdamW, StateRoundTripContinuesIdentically) {
  Tensor a1 = param({4}, 1), b1 = param({2, 3}, 2);
  Tensor a2 = a1.detach().clone().requires_grad_(), b2 = b1.detach().clone().requires_grad_();
  AdamW first({{{a1, b1}, 0.05, 0.01, "g", {"a", "b"}}});
  auto grads = [](int s, const Tensor& t) {
    return ssm::testing::random(t.shape(), DType::F64, 40 + s + 10 * t.dim());
  };
  for (int s = 0; s < 3; ++s) {
    a1.set_grad(grads(s, a1)), b1.set_grad(grads(s, b1));
    first.step();
  }
  a2.copy_(a1), b2.copy_(b1);
  AdamW second({{{a2, b2}, 0.05, 0.01, "g", {"a", "b"}}});
  const auto state = first.state_dict();
  EXPECT_EQ(state.size(), 6u);
  second.load_state_dict(state);
  for (int s = 3; s < 5; ++s) {
    a1.set_grad(grads(s, a1)), b1.set_grad(grads(s, b1));
    a2.set_grad(grads(s, a2)), b2.set_grad(grads(s, b2));
    first.step();
    second.step();
  }
  EXPECT_EQ(a1.to_vector(), a2.to_vector());
  EXPECT_EQ(b1.to_vector(), b2.to_vector());
  EXPECT_EQ(second.state_dict().at("step.b").item(), 5.0);
}

TEST(AdamW, BadInputs) {
  Tensor p = param({3}, 1);
  EXPECT_SSM_ERROR(AdamW({{{p}, 0.1, 0.0, "g", {}}}, {1.0, 0.999, 1e-8}), "AdamW", "beta1", "1");
  EXPECT_SSM_ERROR(AdamW({{{p}, -0.1, 0.0, "g", {}}}), "AdamW", "lr", "-0.1");
  EXPECT_SSM_ERROR(AdamW({{{p}, 0.1, 0.0, "g", {}}, {{p}, 0.1, 0.0, "h", {}}}), "AdamW",
                   "appears twice");
  EXPECT_SSM_ERROR(AdamW({{{Tensor::zeros({2}, DType::I64)}, 0.1, 0.0, "g", {"idx"}}}), "AdamW",
                   "idx", "int64");
  EXPECT_SSM_ERROR(AdamW({{{param({3, 4}, 2).transpose(0, 1)}, 0.1, 0.0, "g", {"wt"}}}), "AdamW",
                   "wt", "contiguous");
  AdamW adam({{{p}, 0.1, 0.0, "g", {"p"}}});
  EXPECT_SSM_ERROR(adam.set_lr_scale(NAN), "set_lr_scale", "scale");
  p.set_grad(Tensor::zeros({4}, DType::F64));
  EXPECT_SSM_ERROR(adam.step(), "AdamW", "'p'", "(3)", "(4)");
  EXPECT_SSM_ERROR(adam.load_state_dict({{"exp_avg.q", Tensor::zeros({3}, DType::F64)}}),
                   "load_state_dict", "exp_avg.q");
  EXPECT_SSM_ERROR(adam.load_state_dict({{"exp_avg.p", Tensor::zeros({2}, DType::F64)}}),
                   "load_state_dict", "exp_avg.p", "(3)", "(2)");
  EXPECT_SSM_ERROR(adam.load_state_dict({{"exp_avg.p", Tensor::zeros({3}, DType::F64)}}),
                   "load_state_dict", "'p'", "missing");
  EXPECT_SSM_ERROR(make_param_groups({}, 0.1, -1.0, 0.1), "make_param_groups", "weight_decay");
}
