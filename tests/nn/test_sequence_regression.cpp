// nn::SequenceRegressor (issue 3: "a sequence model … for classification and regression"): the
// classifier's backbone (encoder → blocks → final norm) with a Linear decoder to d_output real
// values, pooled (mean | last) or at every position (pooling none). Checked here: the parallel
// output against the parts composed by hand in float64 (pooling and decoder as plain loops),
// the recurrent and streaming modes against the parallel one element by element, causality of
// the per-step output, padding, finite-difference gradients of the MSE through the whole model,
// that it learns two generated tasks, and that bad arguments are named.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "ssm/autograd/gradcheck.h"
#include "ssm/autograd/node.h"
#include "ssm/core/rng.h"
#include "ssm/nn/sequence_model.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/reduce.h"
#include "ssm/optim/adamw.h"
#include "ssm/optim/param_groups.h"
#include "support/perturb.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::nn;
using ssm::testing::rel_error;

namespace {

train::ModelConfig tiny_config(const char* pooling) {
  train::ModelConfig c;
  c.d_input = 3;
  c.d_model = 8;
  c.d_state = 8;
  c.n_layers = 2;
  c.pooling = pooling;
  c.max_length = 64;  // the S4 kernel length
  return c;
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

Tensor lengths_tensor(const std::vector<int64_t>& lengths) {
  return Tensor::from_data(lengths, {static_cast<int64_t>(lengths.size())});
}

// The entries of `state` under `prefix`, with the prefix removed.
std::map<std::string, Tensor> substate(const std::map<std::string, Tensor>& state,
                                       const std::string& prefix) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : state)
    if (name.rfind(prefix, 0) == 0) out[name.substr(prefix.size())] = t;
  return out;
}

// The model's encoder, blocks and final norm rebuilt alone from its state: (B, L, H) features.
Tensor composed_features(const SequenceRegressor& model, const Tensor& x,
                         const std::vector<int64_t>& lengths) {
  const train::ModelConfig& c = model.config();
  const auto state = model.state_dict();
  const int64_t B = x.size(0), L = x.size(1);
  Tensor mask;
  if (!lengths.empty()) {
    mask = Tensor::zeros({B, L, 1}, DType::F64);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t l = 0; l < lengths[b]; ++l) mask.set({b, l, 0}, 1.0);
  }
  Generator gen(1);  // the values are overwritten from the state
  Linear encoder(c.d_input, c.d_model, true, gen, DType::F64);
  encoder.load_state_dict(substate(state, "encoder."));
  Tensor h = encoder.forward(x);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    S4Block block(c, gen, 1, DType::F64);
    block.load_state_dict(substate(state, "blocks." + std::to_string(i) + "."));
    block.eval();
    h = block.forward(h, mask);
  }
  LayerNorm norm(c.d_model, 1e-5, DType::F64);
  norm.load_state_dict(substate(state, "norm."));
  return norm.forward(h);
}

// Pooling and decoder as plain float64 loops over the features: (B, d_output) or
// (B, L, d_output), zero at padded positions.
std::vector<double> composed_output(const SequenceRegressor& model, const Tensor& features,
                                    const std::vector<int64_t>& lengths) {
  const int64_t B = features.size(0), L = features.size(1), H = features.size(2);
  const int64_t D = model.d_output();
  const auto h = features.to_vector();
  const auto state = model.state_dict();
  const auto W = state.at("decoder.weight").to_vector(),
             bias = state.at("decoder.bias").to_vector();
  auto decode = [&](const std::vector<double>& v, std::vector<double>& out) {
    for (int64_t d = 0; d < D; ++d) {
      double acc = bias[d];
      for (int64_t k = 0; k < H; ++k) acc += W[d * H + k] * v[k];
      out.push_back(acc);
    }
  };
  std::vector<double> out;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = lengths.empty() ? L : lengths[b];
    auto at = [&](int64_t l, int64_t k) { return h[(b * L + l) * H + k]; };
    if (model.per_step()) {
      for (int64_t l = 0; l < L; ++l) {
        std::vector<double> v(H);
        for (int64_t k = 0; k < H; ++k) v[k] = at(l, k);
        if (l < len)
          decode(v, out);
        else
          out.insert(out.end(), D, 0.0);
      }
      continue;
    }
    std::vector<double> pooled(H, 0.0);
    for (int64_t k = 0; k < H; ++k) {
      if (model.config().pooling == "last") {
        pooled[k] = at(L - 1, k);
        continue;
      }
      for (int64_t l = 0; l < len; ++l) pooled[k] += at(l, k);
      pooled[k] /= static_cast<double>(len);
    }
    decode(pooled, out);
  }
  return out;
}

double max_elem_error(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return diff / std::max(scale, 1e-300);
}

// The streaming API, position by position.
Tensor run_streaming(SequenceRegressor& model, const Tensor& x) {
  std::vector<SSMState> state = model.init_state(x.size(0));
  std::vector<Tensor> ys;
  for (int64_t t = 0; t < x.size(1); ++t) ys.push_back(model.step(x.select(1, t), state));
  Tensor y = Tensor::empty({x.size(0), x.size(1), model.d_output()}, x.dtype());
  for (int64_t t = 0; t < x.size(1); ++t) y.select(1, t).copy_(ys[t]);
  return y;
}

}  // namespace

// The same float64 operations in the same order for the encoder, blocks and norm (the blocks
// are tested on their own elsewhere); pooling and decoder differ only in summation order, so
// the agreement is at rounding level: 1e-12 is ~10⁴ ε, and a wiring mistake (a missing norm,
// the mask not reaching the blocks, a wrong pooling) is O(1).
TEST(SequenceRegressor, ParallelOutputEqualsTheComposedParts) {
  uint64_t seed = 10;
  for (const char* pooling : {"mean", "last", "none"})
    for (bool padded : {false, true}) {
      if (padded && std::string(pooling) == "last") continue;  // rejected, see RejectsBadInputs
      SCOPED_TRACE(std::string(pooling) + (padded ? " padded" : ""));
      train::ModelConfig c = tiny_config(pooling);
      c.norm = padded ? "batch" : "layer";
      SequenceRegressor model(c, 2, ++seed, DType::F64);
      ssm::testing::perturb_parameters_and_norm_statistics(model, ++seed);
      model.eval();
      const Tensor x = ssm::testing::random({3, 20, 3}, DType::F64, ++seed);
      const std::vector<int64_t> lengths =
          padded ? std::vector<int64_t>{20, 9, 1} : std::vector<int64_t>{};
      const Tensor y = padded ? model.forward(x, lengths_tensor(lengths)) : model.forward(x);
      EXPECT_EQ(shape_str(y.shape()), model.per_step() ? "(3, 20, 2)" : "(3, 2)");
      const auto ref = composed_output(model, composed_features(model, x, lengths), lengths);
      EXPECT_LE(max_elem_error(y.to_vector(), ref), 1e-12);
    }
}

// Float64 everywhere: the conv path's FFT and the recurrence differ by ~1e-15 relative per
// layer; 1e-10 (the layers' float64 bound) leaves a wide margin and fails on any real mismatch.
TEST(SequenceRegressor, RecurrentAndStreamingEqualParallelPerElement) {
  uint64_t seed = 100;
  double worst = 0;
  for (const char* layer : {"s4d", "s4", "s5"})
    for (const char* pooling : {"mean", "last", "none"})
      for (bool prenorm : {true, false}) {
        train::ModelConfig c = tiny_config(pooling);
        c.layer = layer;
        c.prenorm = prenorm;
        c.norm = prenorm ? "layer" : "batch";
        c.dropout = 0.1;  // off in eval mode
        SCOPED_TRACE(std::string(layer) + " " + pooling + (prenorm ? " prenorm" : " postnorm"));
        SequenceRegressor model(c, 3, ++seed, DType::F64);
        ssm::testing::perturb_parameters_and_norm_statistics(model, ++seed);
        model.eval();
        const Tensor x = ssm::testing::random({2, 64, 3}, DType::F64, ++seed);
        const Tensor par = model.forward(x), rec = model.forward_recurrent(x);
        const double err = max_elem_error(rec, par);
        EXPECT_LE(err, 1e-10);
        worst = std::max(worst, err);
        if (!model.per_step()) continue;
        const double stream = max_elem_error(run_streaming(model, x), par);
        EXPECT_LE(stream, 1e-10);
        worst = std::max(worst, stream);
      }
  std::printf("[ measured ] regressor parallel vs recurrent / streaming (float64): worst %.2e\n",
              worst);
}

// Float32, the dtype a trained model runs in: same bound as the classifier's (1e-5, see
// test_sequence_model.cpp), on a longer sequence.
TEST(SequenceRegressor, Float32RecurrentEqualsParallel) {
  for (const char* pooling : {"mean", "none"}) {
    train::ModelConfig c = tiny_config(pooling);
    c.d_model = 16;
    c.d_state = 16;
    c.max_length = 0;
    SequenceRegressor model(c, 2, 150);
    ssm::testing::perturb_parameters_and_norm_statistics(model, 151);
    model.eval();
    const Tensor x = ssm::testing::random({2, 500, 3}, DType::F32, 152);
    const Tensor par = model.forward(x);
    EXPECT_LE(rel_error(model.forward_recurrent(x), par), 1e-5) << pooling;
    EXPECT_LE(max_elem_error(model.forward_recurrent(x), par), 1e-5) << pooling;
  }
}

TEST(SequenceRegressor, PerStepOutputIsCausal) {
  train::ModelConfig c = tiny_config("none");
  c.norm = "batch";  // eval mode: running statistics, no mixing across time
  SequenceRegressor model(c, 2, 200, DType::F64);
  ssm::testing::perturb_parameters_and_norm_statistics(model, 201);
  model.eval();
  const int64_t L = 40, t0 = 17;
  const Tensor x = ssm::testing::random({2, L, 3}, DType::F64, 202);
  Tensor changed = x.clone();
  {
    NoGradGuard ng;
    changed.narrow(1, t0 + 1, L - t0 - 1)
        .copy_(ssm::testing::random({2, L - t0 - 1, 3}, DType::F64, 203));
  }
  const Tensor y = model.forward(x), y2 = model.forward(changed);
  // Up to t0 only rounding (the FFT mixes all positions' rounding errors), beyond it O(1).
  EXPECT_LE(max_elem_error(y2.narrow(1, 0, t0 + 1), y.narrow(1, 0, t0 + 1)), 1e-12);
  EXPECT_GT(rel_error(y2.narrow(1, t0 + 1, L - t0 - 1), y.narrow(1, t0 + 1, L - t0 - 1)), 1e-2);
}

// Tokens in, per-step outputs, padded batch: padded outputs are exactly zero, each example's
// outputs are those of the example run alone, and the loss ignores the padding.
TEST(SequenceRegressor, EmbeddingEncoderWithPaddedBatches) {
  train::ModelConfig c = tiny_config("none");
  c.encoder = "embedding";
  c.d_input = 11;  // vocabulary
  SequenceRegressor model(c, 2, 300, DType::F64);
  ssm::testing::perturb_parameters_and_norm_statistics(model, 301);
  model.eval();
  Generator g(302);
  const int64_t L = 30;
  std::vector<int64_t> ids(3 * L);
  for (auto& id : ids) id = static_cast<int64_t>(g.below(11));
  const Tensor tokens = Tensor::from_data(ids, {3, L});
  const std::vector<int64_t> lens{L, 12, 1};
  const Tensor lengths = lengths_tensor(lens);
  const Tensor par = model.forward(tokens, lengths), rec = model.forward_recurrent(tokens, lengths);
  EXPECT_LE(max_elem_error(rec, par), 1e-10);
  const Tensor target = ssm::testing::random({3, L, 2}, DType::F64, 303);
  double sq = 0, count = 0;
  for (int64_t b = 0; b < 3; ++b) {
    const Tensor alone = model.forward(tokens.narrow(0, b, 1).narrow(1, 0, lens[b]).contiguous());
    EXPECT_LE(max_elem_error(par.narrow(0, b, 1).narrow(1, 0, lens[b]).contiguous(), alone), 1e-12);
    for (int64_t l = 0; l < L; ++l)
      for (int64_t d = 0; d < 2; ++d) {
        const double p = par.at({b, l, d}), t = target.at({b, l, d});
        if (l >= lens[b]) {
          EXPECT_EQ(p, 0.0) << "padded output " << b << "," << l;
          continue;
        }
        sq += (p - t) * (p - t);
        count += 1;
      }
  }
  EXPECT_NEAR(model.loss(par, target, lengths).item(), sq / count, 1e-12 * sq / count);
}

// Central differences through the whole model (encoder, two blocks, norms, pooling, decoder,
// MSE) at tiny sizes, for the input and every parameter.
TEST(SequenceRegressor, GradcheckMseThroughTheWholeModel) {
  uint64_t seed = 400;
  for (const char* layer : {"s4d", "s4", "s5"})
    for (const char* pooling : {"mean", "last", "none"}) {
      train::ModelConfig c = tiny_config(pooling);
      c.layer = layer;
      c.d_input = 2;
      c.d_model = 4;
      c.d_state = 4;
      c.max_length = 7;
      // Timescales of a few steps: with the default dt ≥ 1e-3 the SSM parameters' gradients
      // can be ~1e-6, where the finite differences' rounding (~1e-16 / eps) is no longer small.
      c.dt_min = 0.1;
      c.dt_max = 1.0;
      const bool per_step = std::string(pooling) == "none";
      c.norm = per_step ? "batch" : "layer";  // training-mode batch norm: batch statistics
      c.prenorm = !per_step;
      SCOPED_TRACE(std::string(layer) + " " + pooling);
      SequenceRegressor model(c, 2, ++seed, DType::F64);
      ssm::testing::perturb_parameters_and_norm_statistics(model, ++seed);
      Tensor x = ssm::testing::random({2, 7, 2}, DType::F64, ++seed, true);
      const Tensor target =
          ssm::testing::random(per_step ? Shape{2, 7, 2} : Shape{2, 2}, DType::F64, ++seed);
      const Tensor lengths = per_step ? lengths_tensor({7, 4}) : Tensor();
      std::vector<Tensor> inputs{x};
      for (const Tensor& p : model.parameters()) inputs.push_back(p);
      // gradcheck writes the perturbed values into the inputs' memory, which the model reads.
      auto r = gradcheck(
          [&](const std::vector<Tensor>& in) {
            return model.loss(model.forward(in[0], lengths), target, lengths);
          },
          inputs);
      EXPECT_TRUE(r.ok) << r.report;
      std::printf("[ measured ] regressor gradcheck %s %s: worst %.2e over %zu inputs\n", layer,
                  pooling, r.worst_relative_error, inputs.size());
    }
}

namespace {

// AdamW on fresh batches from `make_batch(seed) → {x, target}`; returns the held-out MSE before
// and after.
template <class MakeBatch>
std::pair<double, double> train_regressor(SequenceRegressor& model, int steps,
                                          const MakeBatch& make_batch) {
  optim::AdamW opt(optim::make_param_groups(model.named_parameters(), 1e-2, 0.0, 1e-2));
  const auto [x_val, y_val] = make_batch(1);
  auto val = [&] {
    NoGradGuard ng;
    model.eval();
    const double l = model.loss(model.forward(x_val), y_val).item();
    model.train();
    return l;
  };
  const double before = val();
  for (int s = 0; s < steps; ++s) {
    const auto [x, y] = make_batch(1000 + s);
    Tensor l = model.loss(model.forward(x), y);
    opt.zero_grad();
    l.backward();
    opt.step();
  }
  return {before, val()};
}

}  // namespace

// One output per sequence: the mean of its input (x = offset per sequence + noise, so the
// target has unit variance and a constant prediction scores ~1).
TEST(SequenceRegressor, LearnsTheMeanOfTheInput) {
  train::ModelConfig c = tiny_config("mean");
  c.d_input = 1;
  c.d_model = 16;
  c.d_state = 16;
  c.max_length = 0;
  SequenceRegressor model(c, 1, 500);
  const int64_t B = 16, L = 32;
  auto make_batch = [&](uint64_t s) {
    Generator g(s);
    const Tensor offset = randn({B, 1, 1}, DType::F32, &g);
    const Tensor x = add(offset, randn({B, L, 1}, DType::F32, &g));
    return std::make_pair(x, mean(x, {1}));
  };
  const auto [before, after] = train_regressor(model, 200, make_batch);
  std::printf("[ measured ] mean task: MSE %.3e -> %.3e\n", before, after);
  EXPECT_GT(before, 0.3);
  EXPECT_LT(after, 0.1 * before);
}

// An output at every position: the input delayed by 3 steps (0 before). Only a causal memory of
// the last few inputs solves it; a per-position map of x_t alone scores ~1.
TEST(SequenceRegressor, LearnsADelayedCopyPerStep) {
  train::ModelConfig c = tiny_config("none");
  c.d_input = 1;
  c.d_model = 16;
  c.d_state = 16;
  c.max_length = 0;
  c.dt_min = 0.1;  // timescales of a few steps
  c.dt_max = 1.0;
  SequenceRegressor model(c, 1, 600);
  const int64_t B = 16, L = 32, delay = 3;
  auto make_batch = [&](uint64_t s) {
    Generator g(s);
    const Tensor x = randn({B, L, 1}, DType::F32, &g);
    Tensor y = Tensor::zeros({B, L, 1}, DType::F32);
    y.narrow(1, delay, L - delay).copy_(x.narrow(1, 0, L - delay));
    return std::make_pair(x, y);
  };
  const auto [before, after] = train_regressor(model, 300, make_batch);
  std::printf("[ measured ] delayed copy: MSE %.3e -> %.3e\n", before, after);
  EXPECT_GT(before, 0.5);
  EXPECT_LT(after, 0.1 * before);
}

TEST(SequenceRegressor, SharesTheClassifiersBackboneAndNames) {
  // Same config and seed: the same backbone values under the same names; only the decoder's
  // output size differs (n_classes vs d_output).
  train::ModelConfig c = tiny_config("mean");
  c.n_classes = 5;
  SequenceClassifier classifier(c, 700);
  SequenceRegressor regressor(c, 2, 700);
  const auto a = classifier.state_dict(), b = regressor.state_dict();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    if (name.rfind("decoder.", 0) == 0) continue;
    EXPECT_EQ(t.to_vector(), b.at(name).to_vector()) << name;
  }
  EXPECT_EQ(shape_str(b.at("decoder.weight").shape()), "(2, 8)");
}

TEST(SequenceRegressor, RejectsBadInputs) {
  train::ModelConfig c = tiny_config("mean");
  EXPECT_SSM_ERROR(SequenceRegressor(c, 0, 1), "SequenceRegressor", "'d_output'", "0");
  EXPECT_SSM_ERROR(SequenceRegressor(c, -2, 1), "SequenceRegressor", "'d_output'", "-2");
  EXPECT_SSM_ERROR(SequenceRegressor(c, 1, 1, DType::I64), "SequenceRegressor", "'dtype'", "int64");
  train::ModelConfig odd = c;
  odd.pooling = "max";
  EXPECT_SSM_ERROR(SequenceRegressor(odd, 1, 1), "SequenceRegressor", "pooling", "'max'");
  // "none" is the regressor's per-step output; a classifier has one label per sequence.
  odd.pooling = "none";
  EXPECT_SSM_ERROR(SequenceClassifier(odd, 1), "SequenceClassifier", "pooling", "'none'");

  SequenceRegressor pooled(c, 2, 800, DType::F64);
  pooled.eval();
  const Tensor x = ssm::testing::random({2, 10, 3}, DType::F64, 801);
  const Tensor y = pooled.forward(x);
  EXPECT_SSM_ERROR(pooled.forward(ssm::testing::random({2, 10, 4}, DType::F64)),
                   "SequenceRegressor", "(B, L, 3)", "(2, 10, 4)");
  EXPECT_SSM_ERROR(pooled.forward_recurrent(ssm::testing::random({2, 65, 3}, DType::F64)),
                   "SequenceRegressor", "65", "max_length 64");
  EXPECT_SSM_ERROR(pooled.loss(y, ssm::testing::random({2, 3}, DType::F64)), "SequenceRegressor",
                   "'target'", "(2, 2)", "(2, 3)");
  EXPECT_SSM_ERROR(pooled.loss(y, ssm::testing::random({2, 10, 2}, DType::F64)),
                   "SequenceRegressor", "'target'", "(2, 10, 2)");
  EXPECT_SSM_ERROR(pooled.loss(y, ssm::testing::random({2, 2}, DType::F32)), "SequenceRegressor",
                   "'target'", "float64", "float32");
  EXPECT_SSM_ERROR(pooled.loss(ssm::testing::random({2, 10, 2}, DType::F64),
                               ssm::testing::random({2, 10, 2}, DType::F64)),
                   "SequenceRegressor", "'prediction'", "(B, d_output)", "(2, 10, 2)");
  EXPECT_SSM_ERROR(pooled.loss(y, y, lengths_tensor({10, 5})), "SequenceRegressor", "'lengths'",
                   "per-step");
  EXPECT_SSM_ERROR(pooled.init_state(2), "SequenceRegressor", "per-step", "'mean'");
  std::vector<SSMState> no_state;
  EXPECT_SSM_ERROR(pooled.step(x.select(1, 0), no_state), "SequenceRegressor::step", "per-step");

  train::ModelConfig ps = tiny_config("none");
  ps.dropout = 0.1;
  SequenceRegressor per_step(ps, 2, 802, DType::F64);
  EXPECT_SSM_ERROR(per_step.forward_recurrent(x), "SequenceRegressor::forward_recurrent",
                   "training mode", "eval()");
  per_step.eval();
  const Tensor ys = per_step.forward(x);
  EXPECT_SSM_ERROR(per_step.loss(ys, ssm::testing::random({2, 10, 1}, DType::F64)),
                   "SequenceRegressor", "'target'", "(2, 10, 2)", "(2, 10, 1)");
  EXPECT_SSM_ERROR(per_step.loss(ys, ys, lengths_tensor({10})), "SequenceRegressor", "'lengths'",
                   "(2)", "(1)");
  EXPECT_SSM_ERROR(per_step.loss(ys, ys, lengths_tensor({10, 11})), "SequenceRegressor",
                   "length 11", "[1, 10]");
  std::vector<SSMState> state = per_step.init_state(2);
  EXPECT_SSM_ERROR(per_step.step(x, state), "SequenceRegressor::step", "'x_t'", "(B, 3)",
                   "(2, 10, 3)");
  state.pop_back();
  EXPECT_SSM_ERROR(per_step.step(x.select(1, 0), state), "SequenceRegressor::step", "'state'", "1",
                   "2");
  EXPECT_SSM_ERROR(per_step.init_state(0), "SequenceRegressor", "'batch'", "0");

  train::ModelConfig bi = tiny_config("none");
  bi.bidirectional = true;
  SequenceRegressor bidirectional(bi, 2, 803, DType::F64);
  bidirectional.eval();
  EXPECT_SSM_ERROR(bidirectional.forward_recurrent(x), "bidirectional", "step");
}
