// nn::S4D (DESIGN §5 S4D, §6 checks 1–3): conv mode against a plain complex recurrence written
// from the equations, conv mode against step mode, the bidirectional kernel layout, finite
// differences, float32 against float64, PyTorch autograd, and bad inputs. Every check also
// runs after noise is added to every parameter, as training would move them off their init.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "ssm/autograd/gradcheck.h"
#include "ssm/autograd/node.h"
#include "ssm/core/rng.h"
#include "ssm/nn/s4d.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/shape_ops.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using namespace ssm::nn;
using ssm::testing::rel_error;
using cd = std::complex<double>;

namespace {

const Discretization kBoth[] = {Discretization::ZOH, Discretization::Bilinear};
const char* kInits[] = {"lin", "inv", "real", "legs"};

S4DOptions make_options(int64_t H, int64_t N, const std::string& init, Discretization d,
                        bool bidirectional = false) {
  S4DOptions o;
  o.d_model = H;
  o.d_state = N;
  o.init = init;
  o.discretization = d;
  o.bidirectional = bidirectional;
  return o;
}

// Adds N(0, scale²) noise to every parameter in place, as a few optimizer steps would
// (A_re_log and log_dt are logs, so the noise is relative for Re A and Δ).
void perturb(S4D& layer, double scale, uint64_t seed) {
  NoGradGuard ng;
  Generator g(seed);
  for (auto& p : layer.named_parameters())
    p.tensor.copy_(add(p.tensor, mul_scalar(randn(p.tensor.shape(), p.tensor.dtype(), &g), scale)));
}

// The layer's discretised modes, recomputed here in float64 from DESIGN §5 (not from the layer).
struct Modes {
  int64_t H = 0, M = 0;
  std::vector<cd> A_bar, B_bar, C, C_bwd;  // (H, N/2) row-major
  std::vector<double> D;                   // (H)
};

Modes discretise(const S4D& s) {
  Modes m;
  m.H = s.options.d_model;
  m.M = s.options.d_state / 2;
  const auto ldt = s.log_dt.to_vector(), are = s.A_re_log.to_vector(), aim = s.A_im.to_vector(),
             bre = s.B_re.to_vector(), bim = s.B_im.to_vector(), cre = s.C_re.to_vector(),
             cim = s.C_im.to_vector();
  m.D = s.D.to_vector();
  for (int64_t h = 0; h < m.H; ++h)
    for (int64_t n = 0; n < m.M; ++n) {
      const size_t i = static_cast<size_t>(h * m.M + n);
      const double dt = std::exp(ldt[h]);
      const cd A(-std::exp(are[i]), aim[i]), B(bre[i], bim[i]);
      if (s.options.discretization == Discretization::ZOH) {
        m.A_bar.push_back(std::exp(dt * A));
        m.B_bar.push_back(B * (std::exp(dt * A) - 1.0) / A);
      } else {
        m.A_bar.push_back((1.0 + dt * A / 2.0) / (1.0 - dt * A / 2.0));
        m.B_bar.push_back(dt * B / (1.0 - dt * A / 2.0));
      }
      m.C.emplace_back(cre[i], cim[i]);
    }
  if (s.options.bidirectional) {
    const auto cre = s.C_re_bwd.to_vector(), cim = s.C_im_bwd.to_vector();
    for (size_t i = 0; i < cre.size(); ++i) m.C_bwd.emplace_back(cre[i], cim[i]);
  }
  return m;
}

// x (B, L, H) → y (B, L, H) float64: x_l = Ā x_{l−1} + B̄ u_l, y_l = 2·Re Σ_n C x_l + D u_l.
Tensor plain_recurrence(const S4D& s, const Tensor& x) {
  const Modes m = discretise(s);
  const int64_t B = x.size(0), L = x.size(1), H = m.H;
  const auto u = x.to_vector();
  std::vector<double> y(u.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      std::vector<cd> state(static_cast<size_t>(m.M), 0.0);
      for (int64_t l = 0; l < L; ++l) {
        const size_t at = static_cast<size_t>((b * L + l) * H + h);
        double out = m.D[h] * u[at];
        for (int64_t n = 0; n < m.M; ++n) {
          const size_t i = static_cast<size_t>(h * m.M + n);
          state[n] = m.A_bar[i] * state[n] + m.B_bar[i] * u[at];
          out += 2 * (m.C[i] * state[n]).real();
        }
        y[at] = out;
      }
    }
  return Tensor::from_vector(y, x.shape(), DType::F64);
}

// y_l = Σ_{j≤l} K_f[l−j] u_j + Σ_{j>l} K_b[j−l−1] u_j + D u_l, with the layer's own kernels.
Tensor plain_bidirectional(const S4D& s, const Tensor& x) {
  const int64_t B = x.size(0), L = x.size(1), H = x.size(2);
  const auto u = x.to_vector(), Kf = s.kernel(L).to_vector(), Kb = s.backward_kernel(L).to_vector();
  const auto D = s.D.to_vector();
  auto U = [&](int64_t b, int64_t l, int64_t h) {
    return u[static_cast<size_t>((b * L + l) * H + h)];
  };
  std::vector<double> y(u.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t h = 0; h < H; ++h) {
        double acc = D[h] * U(b, l, h);
        for (int64_t j = 0; j <= l; ++j) acc += Kf[h * L + l - j] * U(b, j, h);
        for (int64_t j = l + 1; j < L; ++j) acc += Kb[h * L + j - l - 1] * U(b, j, h);
        y[static_cast<size_t>((b * L + l) * H + h)] = acc;
      }
  return Tensor::from_vector(y, x.shape(), DType::F64);
}

// Step mode over the whole sequence: (B, L, H) → (B, L, H).
Tensor run_steps(const S4D& s, const Tensor& x) {
  S4DState state = s.init_state(x.size(0));
  std::vector<Tensor> ys;
  for (int64_t l = 0; l < x.size(1); ++l) ys.push_back(s.step(x.select(1, l), state).unsqueeze(1));
  return concat(ys, 1);
}

std::string label(const std::string& init, Discretization d, int64_t L = -1) {
  return init + " " + discretization_name(d) + (L >= 0 ? " L=" + std::to_string(L) : "");
}

}  // namespace

TEST(S4D, ForwardMatchesPlainComplexRecurrence) {
  double worst = 0;
  uint64_t seed = 100;
  for (const char* init : kInits)
    for (Discretization d : kBoth) {
      Generator gen(++seed);
      S4D layer(make_options(4, 16, init, d), gen, DType::F64);
      for (bool perturbed : {false, true}) {
        if (perturbed) perturb(layer, 0.1, ++seed);
        for (int64_t L : {1, 7, 100, 784}) {
          SCOPED_TRACE(label(init, d, L) + (perturbed ? " perturbed" : ""));
          Tensor x = ssm::testing::random({2, L, 4}, DType::F64, ++seed);
          Tensor y = layer.forward(x);
          ASSERT_EQ(shape_str(y.shape()), shape_str(x.shape()));
          const double err = rel_error(y, plain_recurrence(layer, x));
          EXPECT_LE(err, 1e-10);
          worst = std::max(worst, err);
        }
      }
    }
  std::printf("[ measured ] S4D conv vs plain f64 recurrence: worst relative error %.2e\n", worst);
}

TEST(S4D, ConvModeEqualsStepMode) {
  double worst64 = 0, worst32 = 0;
  uint64_t seed = 200;
  for (const char* init : kInits)
    for (Discretization d : kBoth)
      for (DType dtype : {DType::F64, DType::F32}) {
        Generator gen(++seed);
        S4D layer(make_options(3, 8, init, d), gen, dtype);
        for (bool perturbed : {false, true}) {
          if (perturbed) perturb(layer, 0.1, ++seed);
          for (int64_t L : {1, 7, 100, 784}) {
            SCOPED_TRACE(label(init, d, L) + " " + dtype_name(dtype) +
                         (perturbed ? " perturbed" : ""));
            Tensor x = ssm::testing::random({2, L, 3}, dtype, ++seed);
            Tensor stepped = run_steps(layer, x);
            EXPECT_EQ(stepped.dtype(), dtype);
            const double err = rel_error(layer.forward(x), stepped);
            if (dtype == DType::F64) {
              EXPECT_LE(err, 1e-10);
              worst64 = std::max(worst64, err);
            } else {
              EXPECT_LE(err, 1e-5);
              worst32 = std::max(worst32, err);
            }
          }
        }
      }
  std::printf("[ measured ] S4D conv vs step: f64 %.2e, f32 %.2e\n", worst64, worst32);
}

TEST(S4D, StepStateCarriesAcrossCalls) {
  // Two half-sequences through one state equal the whole sequence (the state is the memory).
  Generator gen(301);
  S4D layer(make_options(3, 8, "legs", Discretization::ZOH), gen, DType::F64);
  perturb(layer, 0.1, 302);
  Tensor x = ssm::testing::random({2, 50, 3}, DType::F64, 303);
  Tensor whole = layer.forward(x);
  S4DState state = layer.init_state(2);
  std::vector<Tensor> ys;
  for (int64_t l = 0; l < 50; ++l) ys.push_back(layer.step(x.select(1, l), state).unsqueeze(1));
  EXPECT_LE(rel_error(concat(ys, 1).narrow(1, 25, 25), whole.narrow(1, 25, 25)), 1e-10);
  // A fresh state forgets: the second half alone is not the tail of the whole sequence.
  Tensor tail = run_steps(layer, x.narrow(1, 25, 25));
  EXPECT_GT(rel_error(tail, whole.narrow(1, 25, 25)), 1e-3);
}

TEST(S4D, BidirectionalMatchesPlainFormula) {
  double worst = 0;
  uint64_t seed = 400;
  for (const char* init : {"lin", "legs"})
    for (Discretization d : kBoth) {
      Generator gen(++seed);
      S4D layer(make_options(3, 8, init, d, true), gen, DType::F64);
      for (bool perturbed : {false, true}) {
        if (perturbed) perturb(layer, 0.1, ++seed);
        for (int64_t L : {1, 2, 7, 100, 300}) {
          SCOPED_TRACE(label(init, d, L) + (perturbed ? " perturbed" : ""));
          Tensor x = ssm::testing::random({2, L, 3}, DType::F64, ++seed);
          const double err = rel_error(layer.forward(x), plain_bidirectional(layer, x));
          EXPECT_LE(err, 1e-10);
          worst = std::max(worst, err);
        }
      }
      // The future part is really there: the first output moves when only the last input does.
      Tensor x = ssm::testing::random({1, 20, 3}, DType::F64, ++seed);
      Tensor y0 = layer.forward(x).select(1, 0);
      {
        NoGradGuard ng;
        x.set({0, 19, 1}, x.at({0, 19, 1}) + 1.0);
      }
      EXPECT_GT(rel_error(layer.forward(x).select(1, 0), y0), 1e-6);
    }
  std::printf("[ measured ] S4D bidirectional vs plain formula: %.2e\n", worst);
}

TEST(S4D, BidirectionalLayerHasNoStepMode) {
  Generator gen(450);
  S4D layer(make_options(3, 8, "lin", Discretization::ZOH, true), gen, DType::F64);
  EXPECT_SSM_ERROR(layer.init_state(2), "S4D", "bidirectional", "step");
  // A state made by a causal layer of the same shape cannot smuggle step mode in either.
  Generator gen2(451);
  S4D causal(make_options(3, 8, "lin", Discretization::ZOH), gen2, DType::F64);
  S4DState state = causal.init_state(2);
  EXPECT_SSM_ERROR(layer.step(ssm::testing::random({2, 3}), state), "S4D::step", "bidirectional");
}

TEST(S4D, GradcheckInputAndEveryParameter) {
  uint64_t seed = 500;
  for (Discretization d : kBoth)
    for (bool bidirectional : {false, true}) {
      SCOPED_TRACE(label("legs", d) + (bidirectional ? " bidirectional" : ""));
      Generator gen(++seed);
      S4D layer(make_options(2, 4, "legs", d, bidirectional), gen, DType::F64);
      perturb(layer, 0.1, ++seed);
      Tensor x = ssm::testing::random({2, 9, 2}, DType::F64, ++seed, true);
      std::vector<Tensor> inputs{x};
      for (const Tensor& p : layer.parameters()) inputs.push_back(p);
      ASSERT_EQ(inputs.size(), bidirectional ? 11u : 9u);
      // gradcheck writes the perturbed values into the inputs' memory, which the layer reads.
      auto r =
          gradcheck([&](const std::vector<Tensor>& in) { return layer.forward(in[0]); }, inputs);
      EXPECT_TRUE(r.ok) << r.report;
      std::printf("[ measured ] S4D gradcheck %s%s: worst %.2e\n", discretization_name(d),
                  bidirectional ? " bidirectional" : "", r.worst_relative_error);
    }
}

TEST(S4D, Float32AgreesWithFloat64) {
  uint64_t seed = 600;
  for (Discretization d : kBoth)
    for (bool bidirectional : {false, true}) {
      SCOPED_TRACE(label("legs", d) + (bidirectional ? " bidirectional" : ""));
      Generator g64(++seed), g32(seed);
      S4D l64(make_options(4, 16, "legs", d, bidirectional), g64, DType::F64);
      S4D l32(make_options(4, 16, "legs", d, bidirectional), g32, DType::F32);
      perturb(l64, 0.1, ++seed);
      // Round the parameters to float32 once so both layers hold identical values.
      l32.load_state_dict(l64.state_dict());
      l64.load_state_dict(l32.state_dict());
      const int64_t L = 784;
      Tensor x32 = ssm::testing::random({2, L, 4}, DType::F32, ++seed, true);
      Tensor x64 = x32.detach().to(DType::F64).requires_grad_();
      Tensor w = ssm::testing::random({2, L, 4}, DType::F64, ++seed);
      Tensor y64 = l64.forward(x64), y32 = l32.forward(x32);
      double worst = rel_error(y32, y64);
      EXPECT_LE(worst, 1e-5);
      y64.backward(w);
      y32.backward(w.to(DType::F32));
      EXPECT_LE(rel_error(x32.grad(), x64.grad()), 1e-5);
      worst = std::max(worst, rel_error(x32.grad(), x64.grad()));
      auto p32 = l32.named_parameters(), p64 = l64.named_parameters();
      for (size_t i = 0; i < p32.size(); ++i) {
        const double err = rel_error(p32[i].tensor.grad(), p64[i].tensor.grad());
        EXPECT_LE(err, 1e-5) << p32[i].name;
        worst = std::max(worst, err);
      }
      std::printf("[ measured ] S4D f32 vs f64 %s%s (output and all gradients): worst %.2e\n",
                  discretization_name(d), bidirectional ? " bidirectional" : "", worst);
    }
}

TEST(S4D, MatchesTorchAutograd) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  uint64_t seed = 700;
  double worst = 0;
  for (Discretization d : kBoth)
    for (bool bidirectional : {false, true}) {
      SCOPED_TRACE(label("inv", d) + (bidirectional ? " bidirectional" : ""));
      Generator gen(++seed);
      S4D layer(make_options(3, 8, "inv", d, bidirectional), gen, DType::F64);
      perturb(layer, 0.1, ++seed);
      const int64_t L = 40;
      Tensor x = ssm::testing::random({2, L, 3}, DType::F64, ++seed, true);
      Tensor w = ssm::testing::random({2, L, 3}, DType::F64, ++seed);
      std::map<std::string, Tensor> inputs{{"x", x.detach()}, {"w", w}};
      for (const auto& p : layer.named_parameters()) inputs[p.name] = p.tensor.detach();
      inputs["bilinear"] =
          Tensor::from_vector({d == Discretization::Bilinear ? 1.0 : 0.0}, {1}, DType::F64);
      auto ref = ssm::testing::run_torch("s4d_layer_ref.py", inputs);

      Tensor y = layer.forward(x);
      double err = rel_error(y, ref.at("y"));
      EXPECT_LE(err, 1e-8);
      worst = std::max(worst, err);
      y.backward(w);
      err = rel_error(x.grad(), ref.at("grad_x"));
      EXPECT_LE(err, 1e-8) << "x";
      worst = std::max(worst, err);
      for (const auto& p : layer.named_parameters()) {
        err = rel_error(p.tensor.grad(), ref.at("grad_" + p.name));
        EXPECT_LE(err, 1e-8) << p.name;
        worst = std::max(worst, err);
      }
    }
  std::printf("[ measured ] S4D vs torch autograd: worst relative error %.2e\n", worst);
}

TEST(S4D, RejectsBadInputs) {
  Generator gen(800);
  EXPECT_SSM_ERROR(S4D(make_options(4, 7, "lin", Discretization::ZOH), gen), "S4D", "d_state",
                   "even", "7");
  EXPECT_SSM_ERROR(S4D(make_options(0, 8, "lin", Discretization::ZOH), gen), "S4D", "d_model", "0");
  EXPECT_SSM_ERROR(S4D(make_options(4, 8, "diagonal", Discretization::ZOH), gen), "init",
                   "'diagonal'");

  S4D layer(make_options(4, 8, "lin", Discretization::ZOH), gen, DType::F64);
  EXPECT_SSM_ERROR(layer.forward(ssm::testing::random({2, 5})), "S4D", "(B, L, 4)", "(2, 5)");
  EXPECT_SSM_ERROR(layer.forward(ssm::testing::random({2, 5, 3})), "S4D", "(B, L, 4)", "(2, 5, 3)");
  EXPECT_SSM_ERROR(layer.backward_kernel(8), "S4D::backward_kernel", "not bidirectional");
  EXPECT_SSM_ERROR(layer.forward(ssm::testing::random({2, 5, 4}, DType::F32)), "S4D", "input",
                   "float32", "float64");

  EXPECT_SSM_ERROR(layer.init_state(0), "S4D::init_state", "batch", "0");
  S4DState state = layer.init_state(3);
  EXPECT_SSM_ERROR(layer.step(ssm::testing::random({2, 4}), state), "S4D::step", "batch 3",
                   "batch 2");
  EXPECT_SSM_ERROR(layer.step(ssm::testing::random({3, 5}), state), "S4D::step", "(B, 4)",
                   "(3, 5)");
  EXPECT_SSM_ERROR(layer.step(ssm::testing::random({3, 4, 1}), state), "S4D::step", "(B, 4)",
                   "(3, 4, 1)");
  // A state from a layer of another shape would be read out of bounds.
  S4D wider(make_options(4, 16, "lin", Discretization::ZOH), gen, DType::F64);
  S4DState wide_state = wider.init_state(3);
  EXPECT_SSM_ERROR(layer.step(ssm::testing::random({3, 4}), wide_state), "S4D::step", "state",
                   "(3, 4, 4)", "(3, 4, 8)");
  S4DState empty;
  EXPECT_SSM_ERROR(layer.step(ssm::testing::random({3, 4}), empty), "S4D::step", "state");
}
