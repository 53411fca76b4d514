// Convolution / scan mode equals step mode after real AdamW steps (issue 3 checks: "also after
// training steps have changed the parameters"), for S4 (rank 1 and 2), S5 and S4D. The layer
// tests perturb parameters with noise; here the library's optimizer moves them, with its
// parameter groups (the SSM group included), so the step mode's frozen discretisation (S4's C
// recovered from C̃ = C(I − Ā^l_max), S5's and S4D's Ā, B̄) is checked on trained values.
// Layers alone in float64 and float32, and whole SequenceClassifiers in float32 (the only
// dtype it builds), element by element.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ssm/autograd/node.h"
#include "ssm/core/rng.h"
#include "ssm/nn/s4.h"
#include "ssm/nn/s4d.h"
#include "ssm/nn/s5.h"
#include "ssm/nn/sequence_model.h"
#include "ssm/ops/loss.h"
#include "ssm/optim/adamw.h"
#include "ssm/optim/param_groups.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

constexpr int kSteps = 5;

double bound_for(DType dt) {
  return dt == DType::F64 ? 1e-10 : 1e-5;
}

// max_i |a_i − b_i| / max_i |b_i|: no single element may be off by more than the bound times
// the output's scale (a norm-wise error could hide a few bad positions).
double max_elem_error(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(shape_str(a.shape()), shape_str(b.shape()));
  const auto va = a.to_vector(), vb = b.to_vector();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < va.size() && i < vb.size(); ++i) {
    if (!std::isfinite(va[i]) || !std::isfinite(vb[i])) return INFINITY;
    diff = std::max(diff, std::abs(va[i] - vb[i]));
    scale = std::max(scale, std::abs(vb[i]));
  }
  return diff / std::max(scale, 1e-300);
}

std::map<std::string, std::vector<double>> snapshot(const nn::Module& m) {
  std::map<std::string, std::vector<double>> s;
  for (const auto& p : m.named_parameters()) s[p.name] = p.tensor.to_vector();
  return s;
}

// Runs kSteps AdamW updates of `loss()` (lr 1e-2 for every group, the SSM one included, so
// Δ, A and B move as much as the readout) and checks that they were real: the loss went down
// and every parameter moved by more than 1e-3 somewhere.
void train_steps(nn::Module& m, const std::function<Tensor()>& loss) {
  const auto before = snapshot(m);
  optim::AdamW opt(optim::make_param_groups(m.named_parameters(), 1e-2, 0.01, 1e-2));
  double first = 0, last = 0;
  for (int s = 0; s < kSteps; ++s) {
    Tensor l = loss();
    (s == 0 ? first : last) = l.item();
    opt.zero_grad();
    l.backward();
    opt.step();
  }
  {
    NoGradGuard ng;
    last = loss().item();
  }
  EXPECT_LT(last, first) << "the optimizer steps did not reduce the loss";
  for (const auto& p : m.named_parameters()) {
    const auto after = p.tensor.to_vector();
    const auto& was = before.at(p.name);
    double moved = 0;
    for (size_t i = 0; i < after.size(); ++i) moved = std::max(moved, std::abs(after[i] - was[i]));
    EXPECT_GT(moved, 1e-3) << p.name << " did not move";
  }
}

// Regression to random targets of the layer's own output shape.
template <class Layer>
void train_layer(Layer& m, int64_t B, int64_t L, int64_t H, DType dt, uint64_t seed) {
  const Tensor u = ssm::testing::random({B, L, H}, dt, seed);
  const Tensor target = ssm::testing::random({B, L, H}, dt, seed + 1);
  train_steps(m, [&] { return mse_loss(m.forward(u), target); });
}

template <class Layer, class State>
Tensor run_steps(const Layer& m, const Tensor& u) {
  const int64_t B = u.size(0), L = u.size(1), H = u.size(2);
  State state = m.init_state(B);
  Tensor y = Tensor::empty({B, L, H}, u.dtype());
  for (int64_t l = 0; l < L; ++l) y.select(1, l).copy_(m.step(u.select(1, l), state));
  return y;
}

// Conv/scan forward against the step recurrence on fresh inputs; returns the worst error.
template <class Layer, class State>
double compare_modes(const Layer& m, int64_t H, const std::vector<int64_t>& lengths, DType dt,
                     uint64_t seed) {
  NoGradGuard ng;
  double worst = 0;
  for (int64_t L : lengths) {
    const Tensor u = ssm::testing::random({2, L, H}, dt, seed++);
    const Tensor y = m.forward(u), ys = run_steps<Layer, State>(m, u);
    const double elem = max_elem_error(y, ys), norm = rel_error(y, ys);
    EXPECT_LE(elem, bound_for(dt)) << "L=" << L;
    EXPECT_LE(norm, bound_for(dt)) << "L=" << L;
    worst = std::max({worst, elem, norm});
  }
  return worst;
}

}  // namespace

TEST(ModesAfterTraining, S4ConvolutionEqualsStep) {
  for (const char* init : {"legs", "legt"})  // DPLR rank 1 and rank 2
    for (DType dt : {DType::F64, DType::F32}) {
      SCOPED_TRACE(std::string(init) + " " + dtype_name(dt));
      nn::S4Options o;
      o.d_model = 4;
      o.d_state = 16;
      o.l_max = 128;
      o.init = init;
      Generator g(41);
      nn::S4 m(o, g, dt);
      train_layer(m, 2, 128, 4, dt, 42);
      const double worst = compare_modes<nn::S4, nn::S4State>(m, 4, {128, 57}, dt, 43);
      std::printf("[ measured ] S4 %s %s after %d AdamW steps: conv vs step %.2e\n", init,
                  dtype_name(dt), kSteps, worst);
    }
}

TEST(ModesAfterTraining, S5ScanEqualsStep) {
  for (DType dt : {DType::F64, DType::F32}) {
    SCOPED_TRACE(dtype_name(dt));
    nn::S5Options o;
    o.d_model = 8;
    o.d_state = 16;
    o.block_size = 8;
    Generator g(51);
    nn::S5 m(o, g, dt);
    train_layer(m, 2, 200, 8, dt, 52);
    // 1100 steps: B·L·P ≥ 2^15, so the scan is split into chunks (prefix across chunks).
    const double worst = compare_modes<nn::S5, nn::S5State>(m, 8, {200, 1100}, dt, 53);
    std::printf("[ measured ] S5 %s after %d AdamW steps: scan vs step %.2e\n", dtype_name(dt),
                kSteps, worst);
  }
}

TEST(ModesAfterTraining, S4DConvolutionEqualsStep) {
  for (Discretization d : {Discretization::ZOH, Discretization::Bilinear})
    for (DType dt : {DType::F64, DType::F32}) {
      SCOPED_TRACE(std::string(discretization_name(d)) + " " + dtype_name(dt));
      nn::S4DOptions o;
      o.d_model = 4;
      o.d_state = 16;
      o.discretization = d;
      Generator g(61);
      nn::S4D m(o, g, dt);
      train_layer(m, 2, 200, 4, dt, 62);
      const double worst = compare_modes<nn::S4D, nn::S4DState>(m, 4, {200, 333}, dt, 63);
      std::printf("[ measured ] S4D %s %s after %d AdamW steps: conv vs step %.2e\n",
                  discretization_name(d), dtype_name(dt), kSteps, worst);
    }
}

// Whole classifiers (encoder, two blocks with LayerNorm, GLU, dropout during training, mean
// pooling, decoder) trained on random labels, then the per-element logits of the parallel
// forward against the token-by-token recurrence (float32: the classifier's dtype).
TEST(ModesAfterTraining, SequenceClassifierLogitsConvEqualsRecurrent) {
  uint64_t seed = 70;
  for (const char* layer : {"s4", "s5", "s4d"}) {
    SCOPED_TRACE(layer);
    train::ModelConfig c;
    c.layer = layer;
    c.d_input = 1;
    c.d_model = 16;
    c.d_state = 16;
    c.n_layers = 2;
    c.n_classes = 5;
    c.dropout = 0.1;
    c.max_length = 100;  // the S4 kernel length
    nn::SequenceClassifier model(c, ++seed);
    const Tensor x = ssm::testing::random({8, 100, 1}, DType::F32, ++seed);
    Generator g(++seed);
    std::vector<int64_t> labels(8);
    for (auto& y : labels) y = static_cast<int64_t>(g.below(5));
    const Tensor targets = Tensor::from_data(labels, {8});
    model.train();
    int64_t step = 0;
    train_steps(model, [&] {
      model.reseed_dropout(7, step++);
      return cross_entropy(model.forward(x), targets);
    });
    model.eval();
    NoGradGuard ng;
    double worst = 0;
    for (int64_t L : {100, 37}) {
      const Tensor u = ssm::testing::random({3, L, 1}, DType::F32, ++seed);
      const Tensor conv = model.forward(u), rec = model.forward_recurrent(u);
      ASSERT_EQ(shape_str(conv.shape()), "(3, 5)");
      const double elem = max_elem_error(rec, conv), norm = rel_error(rec, conv);
      EXPECT_LE(elem, 1e-5) << "L=" << L;
      EXPECT_LE(norm, 1e-5) << "L=" << L;
      worst = std::max({worst, elem, norm});
    }
    std::printf("[ measured ] classifier (%s) after %d AdamW steps: conv vs recurrent %.2e\n",
                layer, kSteps, worst);
  }
}
