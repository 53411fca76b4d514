// layer_norm, rms_norm, gated_rms_norm and batch_norm against plain float64 loops, finite
// differences and PyTorch autograd.
#include <cmath>

#include "ssm/autograd/gradcheck.h"
#include "ssm/ops/norm.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using ssm::testing::random;
using ssm::testing::rel_error;

namespace {

// Codes understood by tests/python/norm_ref.py.
enum TorchKind { kLayerNorm = 0, kRmsNorm = 1, kGatedRmsNorm = 2, kBatchTrain = 3, kBatchEval = 4 };

Tensor shape_like(const std::vector<double>& v, const Tensor& t) {
  return Tensor::from_vector(v, t.shape(), DType::F64);
}

double weight_at(const Tensor& w, int64_t d) {
  return w.defined() ? w.at({d}) : 1.0;
}

Tensor naive_layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const int64_t D = x.size(-1), rows = x.numel() / D;
  const std::vector<double> X = x.to_vector();
  std::vector<double> Y(X.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t d = 0; d < D; ++d) mean += X[r * D + d] / D;
    for (int64_t d = 0; d < D; ++d) var += (X[r * D + d] - mean) * (X[r * D + d] - mean) / D;
    for (int64_t d = 0; d < D; ++d)
      Y[r * D + d] = (X[r * D + d] - mean) / std::sqrt(var + eps) * weight_at(w, d) +
                     (b.defined() ? b.at({d}) : 0.0);
  }
  return shape_like(Y, x);
}

// x ⊙ SiLU(z) (or x when z is undefined), RMS-normalised within groups, times w.
Tensor naive_gated_rms_norm(const Tensor& x, const Tensor& z, const Tensor& w, int64_t group,
                            double eps) {
  const int64_t D = x.size(-1), rows = x.numel() / D;
  const std::vector<double> X = x.to_vector();
  const std::vector<double> Z = z.defined() ? z.to_vector() : std::vector<double>();
  std::vector<double> U(X.size()), Y(X.size());
  for (size_t i = 0; i < X.size(); ++i)
    U[i] = z.defined() ? X[i] * Z[i] / (1 + std::exp(-Z[i])) : X[i];
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g0 = 0; g0 < D; g0 += group) {
      double ms = 0;
      for (int64_t d = g0; d < g0 + group; ++d) ms += U[r * D + d] * U[r * D + d] / group;
      for (int64_t d = g0; d < g0 + group; ++d)
        Y[r * D + d] = U[r * D + d] / std::sqrt(ms + eps) * weight_at(w, d);
    }
  return shape_like(Y, x);
}

struct BatchStats {
  std::vector<double> mean, var;  // biased variance
};
BatchStats naive_batch_stats(const Tensor& x) {
  const int64_t D = x.size(-1), rows = x.numel() / D;
  const std::vector<double> X = x.to_vector();
  BatchStats s{std::vector<double>(D, 0.0), std::vector<double>(D, 0.0)};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t d = 0; d < D; ++d) s.mean[d] += X[r * D + d] / rows;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t d = 0; d < D; ++d)
      s.var[d] += (X[r * D + d] - s.mean[d]) * (X[r * D + d] - s.mean[d]) / rows;
  return s;
}
Tensor naive_batch_norm(const Tensor& x, const std::vector<double>& mean,
                        const std::vector<double>& var, const Tensor& w, const Tensor& b,
                        double eps) {
  const int64_t D = x.size(-1), rows = x.numel() / D;
  const std::vector<double> X = x.to_vector();
  std::vector<double> Y(X.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t d = 0; d < D; ++d)
      Y[r * D + d] = (X[r * D + d] - mean[d]) / std::sqrt(var[d] + eps) * weight_at(w, d) +
                     (b.defined() ? b.at({d}) : 0.0);
  return shape_like(Y, x);
}

void expect_gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                      const std::vector<Tensor>& inputs) {
  const GradcheckResult r = gradcheck(fn, inputs);
  EXPECT_TRUE(r.ok) << r.report;
}

// Runs fn forward and backward (with upstream gradient dy) in float64 and in float32 on the
// same values and expects the output and every input gradient to agree to 1e-5.
void expect_f32_matches_f64(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                            const std::vector<Tensor>& inputs64, const Tensor& dy) {
  std::vector<Tensor> in64, in32;
  for (const Tensor& t : inputs64) {
    in64.push_back(t.detach().clone().requires_grad_());
    in32.push_back(t.detach().to(DType::F32).requires_grad_());
  }
  Tensor y64 = fn(in64), y32 = fn(in32);
  EXPECT_EQ(y32.dtype(), DType::F32);
  y64.backward(dy);
  y32.backward(dy.to(DType::F32));
  EXPECT_LT(rel_error(y32, y64), 1e-5);
  for (size_t i = 0; i < in64.size(); ++i)
    EXPECT_LT(rel_error(in32[i].grad(), in64[i].grad()), 1e-5) << "input " << i;
}

}  // namespace

// --------------------------------------------------------------------------- layer_norm

TEST(LayerNorm, MatchesNaive) {
  Tensor x = random({2, 3, 8}, DType::F64, 1), w = random({8}, DType::F64, 2);
  Tensor b = random({8}, DType::F64, 3);
  EXPECT_LT(rel_error(layer_norm(x, w, b), naive_layer_norm(x, w, b, 1e-5)), 1e-13);
  EXPECT_LT(rel_error(layer_norm(x, Tensor(), Tensor(), 1e-3),
                      naive_layer_norm(x, Tensor(), Tensor(), 1e-3)),
            1e-13);
  // large rows cross the threading threshold
  Tensor big = random({256, 256}, DType::F64, 4), wb = random({256}, DType::F64, 5);
  EXPECT_LT(rel_error(layer_norm(big, wb, Tensor()), naive_layer_norm(big, wb, Tensor(), 1e-5)),
            1e-13);
}

TEST(LayerNorm, GradientsMatchFiniteDifferences) {
  auto f = [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2]); };
  expect_gradcheck(f, {random({3, 2, 6}, DType::F64, 6, true), random({6}, DType::F64, 7, true),
                       random({6}, DType::F64, 8, true)});
  auto f_plain = [](const std::vector<Tensor>& in) {
    return layer_norm(in[0].transpose(0, 1), Tensor(), Tensor(), 1e-2);  // strided input
  };
  expect_gradcheck(f_plain, {random({5, 4}, DType::F64, 9, true)});
}

TEST(LayerNorm, Float32AgreesWithFloat64EvenWithLargeOffset) {
  // Values around 1e4 with unit spread: float32 statistics would lose ~1e-3 of x̂.
  Tensor x = random({64, 48}, DType::F64, 10).to(DType::F32).to(DType::F64);
  Tensor shifted = Tensor::from_vector(x.to_vector(), x.shape(), DType::F64);
  {
    double* p = shifted.data<double>();
    for (int64_t i = 0; i < shifted.numel(); ++i) p[i] = static_cast<float>(p[i] + 1e4);
  }
  auto f = [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2]); };
  Tensor w = random({48}, DType::F64, 11).to(DType::F32).to(DType::F64);
  Tensor b = random({48}, DType::F64, 12).to(DType::F32).to(DType::F64);
  Tensor dy = random({64, 48}, DType::F64, 13).to(DType::F32).to(DType::F64);
  expect_f32_matches_f64(f, {x, w, b}, dy);
  expect_f32_matches_f64(f, {shifted, w, b}, dy);
}

TEST(LayerNorm, MatchesTorchAutograd) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  Tensor x = random({4, 128, 64}, DType::F64, 14, true), w = random({64}, DType::F64, 15, true);
  Tensor b = random({64}, DType::F64, 16, true), dy = random({4, 128, 64}, DType::F64, 17);
  Tensor y = layer_norm(x, w, b, 1e-5);
  y.backward(dy);
  auto ref =
      ssm::testing::run_torch("norm_ref.py", {{"kind", Tensor::scalar(kLayerNorm, DType::F64)},
                                              {"eps", Tensor::scalar(1e-5, DType::F64)},
                                              {"x", x},
                                              {"w", w},
                                              {"b", b},
                                              {"dy", dy}});
  EXPECT_LT(rel_error(y, ref["y"]), 1e-12);
  EXPECT_LT(rel_error(x.grad(), ref["gx"]), 1e-12);
  EXPECT_LT(rel_error(w.grad(), ref["gw"]), 1e-12);
  EXPECT_LT(rel_error(b.grad(), ref["gb"]), 1e-12);
}

TEST(LayerNorm, RejectsBadInputs) {
  Tensor x = random({2, 8}, DType::F64, 18);
  EXPECT_SSM_ERROR(layer_norm(x, random({7}, DType::F64, 19), Tensor()), "layer_norm", "'weight'",
                   "(8)", "(7)");
  EXPECT_SSM_ERROR(layer_norm(x, Tensor(), random({2, 8}, DType::F64, 20)), "layer_norm", "'bias'",
                   "(2, 8)");
  EXPECT_SSM_ERROR(layer_norm(x, random({8}, DType::F32, 21), Tensor()), "layer_norm", "'weight'",
                   "float32");
  EXPECT_SSM_ERROR(layer_norm(Tensor::empty({2, 0}, DType::F64), Tensor(), Tensor()), "layer_norm",
                   "'x'", "(2, 0)");
  EXPECT_SSM_ERROR(layer_norm(x, Tensor(), Tensor(), -1.0), "layer_norm", "'eps'", "-1");
}

// ----------------------------------------------------------------------------- rms_norm

TEST(RmsNorm, MatchesNaive) {
  Tensor x = random({3, 5, 16}, DType::F64, 30), w = random({16}, DType::F64, 31);
  EXPECT_LT(rel_error(rms_norm(x, w), naive_gated_rms_norm(x, Tensor(), w, 16, 1e-5)), 1e-13);
  EXPECT_LT(
      rel_error(rms_norm(x, Tensor(), 0.1), naive_gated_rms_norm(x, Tensor(), Tensor(), 16, 0.1)),
      1e-13);
}

TEST(RmsNorm, GradientsMatchFiniteDifferences) {
  auto f = [](const std::vector<Tensor>& in) { return rms_norm(in[0], in[1]); };
  expect_gradcheck(f, {random({4, 7}, DType::F64, 32, true), random({7}, DType::F64, 33, true)});
}

TEST(RmsNorm, Float32AgreesWithFloat64) {
  auto f = [](const std::vector<Tensor>& in) { return rms_norm(in[0], in[1]); };
  expect_f32_matches_f64(f, {random({128, 256}, DType::F64, 34), random({256}, DType::F64, 35)},
                         random({128, 256}, DType::F64, 36));
}

TEST(RmsNorm, MatchesTorchAutograd) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  Tensor x = random({2, 9, 12}, DType::F64, 37, true), w = random({12}, DType::F64, 38, true);
  Tensor dy = random({2, 9, 12}, DType::F64, 39);
  Tensor y = rms_norm(x, w, 1e-6);
  y.backward(dy);
  auto ref = ssm::testing::run_torch("norm_ref.py", {{"kind", Tensor::scalar(kRmsNorm, DType::F64)},
                                                     {"eps", Tensor::scalar(1e-6, DType::F64)},
                                                     {"x", x},
                                                     {"w", w},
                                                     {"dy", dy}});
  EXPECT_LT(rel_error(y, ref["y"]), 1e-12);
  EXPECT_LT(rel_error(x.grad(), ref["gx"]), 1e-12);
  EXPECT_LT(rel_error(w.grad(), ref["gw"]), 1e-12);
}

TEST(RmsNorm, RejectsBadInputs) {
  EXPECT_SSM_ERROR(rms_norm(random({2, 8}, DType::F64, 40), random({4}, DType::F64, 41)),
                   "rms_norm", "'weight'", "(8)", "(4)");
  EXPECT_SSM_ERROR(rms_norm(Tensor::zeros({2, 8}, DType::I32), Tensor()), "rms_norm", "'x'",
                   "int32");
}

// ----------------------------------------------------------------------- gated_rms_norm

TEST(GatedRmsNorm, MatchesNaiveForOneAndSeveralGroups) {
  Tensor x = random({2, 3, 12}, DType::F64, 50), z = random({2, 3, 12}, DType::F64, 51);
  Tensor w = random({12}, DType::F64, 52);
  for (int64_t group : {12, 4, 3, 1})
    EXPECT_LT(rel_error(gated_rms_norm(x, z, w, group), naive_gated_rms_norm(x, z, w, group, 1e-5)),
              1e-13)
        << "group " << group;
}

TEST(GatedRmsNorm, GradientsMatchFiniteDifferences) {
  for (int64_t group : {6, 2}) {
    auto f = [group](const std::vector<Tensor>& in) {
      return gated_rms_norm(in[0], in[1], in[2], group);
    };
    expect_gradcheck(f, {random({3, 6}, DType::F64, 53, true), random({3, 6}, DType::F64, 54, true),
                         random({6}, DType::F64, 55, true)});
  }
}

TEST(GatedRmsNorm, Float32AgreesWithFloat64) {
  auto f = [](const std::vector<Tensor>& in) { return gated_rms_norm(in[0], in[1], in[2], 32); };
  expect_f32_matches_f64(f,
                         {random({64, 128}, DType::F64, 56), random({64, 128}, DType::F64, 57),
                          random({128}, DType::F64, 58)},
                         random({64, 128}, DType::F64, 59));
}

TEST(GatedRmsNorm, MatchesTorchAutograd) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  Tensor x = random({2, 5, 16}, DType::F64, 60, true), z = random({2, 5, 16}, DType::F64, 61, true);
  Tensor w = random({16}, DType::F64, 62, true), dy = random({2, 5, 16}, DType::F64, 63);
  Tensor y = gated_rms_norm(x, z, w, 4, 1e-5);
  y.backward(dy);
  auto ref =
      ssm::testing::run_torch("norm_ref.py", {{"kind", Tensor::scalar(kGatedRmsNorm, DType::F64)},
                                              {"eps", Tensor::scalar(1e-5, DType::F64)},
                                              {"group_size", Tensor::scalar(4, DType::F64)},
                                              {"x", x},
                                              {"z", z},
                                              {"w", w},
                                              {"dy", dy}});
  EXPECT_LT(rel_error(y, ref["y"]), 1e-12);
  EXPECT_LT(rel_error(x.grad(), ref["gx"]), 1e-12);
  EXPECT_LT(rel_error(z.grad(), ref["gz"]), 1e-12);
  EXPECT_LT(rel_error(w.grad(), ref["gw"]), 1e-12);
}

TEST(GatedRmsNorm, RejectsBadInputs) {
  Tensor x = random({2, 12}, DType::F64, 64), z = random({2, 12}, DType::F64, 65);
  EXPECT_SSM_ERROR(gated_rms_norm(x, z, Tensor(), 5), "gated_rms_norm", "'group_size'", "12", "5");
  EXPECT_SSM_ERROR(gated_rms_norm(x, z, Tensor(), 0), "gated_rms_norm", "'group_size'");
  EXPECT_SSM_ERROR(gated_rms_norm(x, random({2, 6}, DType::F64, 66), Tensor(), 4), "gated_rms_norm",
                   "'z'", "(2, 12)", "(2, 6)");
  EXPECT_SSM_ERROR(gated_rms_norm(x, Tensor(), Tensor(), 4), "gated_rms_norm", "'z'", "undefined");
}

// --------------------------------------------------------------------------- batch_norm

TEST(BatchNorm, TrainingNormalisesWithBatchStatsAndUpdatesRunningStats) {
  Tensor x = random({3, 5, 4}, DType::F64, 70), w = random({4}, DType::F64, 71);
  Tensor b = random({4}, DType::F64, 72);
  Tensor rm = random({4}, DType::F64, 73), rv = Tensor::full({4}, 2.0, DType::F64);
  const std::vector<double> rm0 = rm.to_vector(), rv0 = rv.to_vector();
  Tensor y = batch_norm(x, w, b, rm, rv, /*training=*/true, 0.2, 1e-5);
  const BatchStats s = naive_batch_stats(x);
  EXPECT_LT(rel_error(y, naive_batch_norm(x, s.mean, s.var, w, b, 1e-5)), 1e-13);
  const double rows = 15;
  for (int64_t d = 0; d < 4; ++d) {
    EXPECT_NEAR(rm.at({d}), 0.8 * rm0[d] + 0.2 * s.mean[d], 1e-14);
    EXPECT_NEAR(rv.at({d}), 0.8 * rv0[d] + 0.2 * s.var[d] * rows / (rows - 1), 1e-14);
  }
  // Without running statistics training still normalises (nothing is tracked).
  Tensor none;
  EXPECT_LT(rel_error(batch_norm(x, w, b, none, none, true),
                      naive_batch_norm(x, s.mean, s.var, w, b, 1e-5)),
            1e-13);
}

TEST(BatchNorm, EvalNormalisesWithRunningStatsAndLeavesThemAlone) {
  Tensor x = random({2, 6, 3}, DType::F64, 74), w = random({3}, DType::F64, 75);
  Tensor b = random({3}, DType::F64, 76);
  Tensor rm = random({3}, DType::F64, 77),
         rv = Tensor::from_vector({0.5, 1.5, 3.0}, {3}, DType::F64);
  const std::vector<double> rm0 = rm.to_vector(), rv0 = rv.to_vector();
  Tensor y = batch_norm(x, w, b, rm, rv, /*training=*/false);
  EXPECT_LT(rel_error(y, naive_batch_norm(x, rm0, rv0, w, b, 1e-5)), 1e-13);
  EXPECT_EQ(rm.to_vector(), rm0);
  EXPECT_EQ(rv.to_vector(), rv0);
  // Strided (non-contiguous) running buffers are read and written through their strides.
  Tensor rm2 = Tensor::zeros({3, 2}, DType::F64), rv2 = Tensor::ones({3, 2}, DType::F64);
  Tensor rm_view = rm2.select(1, 1), rv_view = rv2.select(1, 1);
  batch_norm(x, w, b, rm_view, rv_view, true, 1.0);
  const BatchStats s = naive_batch_stats(x);
  for (int64_t d = 0; d < 3; ++d) {
    EXPECT_NEAR(rm2.at({d, 1}), s.mean[d], 1e-14);
    EXPECT_EQ(rm2.at({d, 0}), 0.0);
    EXPECT_NEAR(rv2.at({d, 1}), s.var[d] * 12 / 11, 1e-14);
  }
}

TEST(BatchNorm, GradientsMatchFiniteDifferencesInBothModes) {
  for (bool training : {true, false}) {
    auto f = [training](const std::vector<Tensor>& in) {
      Tensor rm = Tensor::from_vector({0.1, -0.2, 0.3}, {3}, DType::F64);
      Tensor rv = Tensor::from_vector({0.5, 1.5, 2.0}, {3}, DType::F64);
      return batch_norm(in[0], in[1], in[2], rm, rv, training);
    };
    expect_gradcheck(f, {random({2, 4, 3}, DType::F64, 78, true), random({3}, DType::F64, 79, true),
                         random({3}, DType::F64, 80, true)});
  }
}

TEST(BatchNorm, Float32AgreesWithFloat64) {
  for (bool training : {true, false}) {
    auto f = [training](const std::vector<Tensor>& in) {
      Tensor rm = Tensor::full({64}, 0.3, in[0].dtype()),
             rv = Tensor::full({64}, 1.7, in[0].dtype());
      return batch_norm(in[0], in[1], in[2], rm, rv, training);
    };
    expect_f32_matches_f64(f,
                           {random({8, 128, 64}, DType::F64, 81), random({64}, DType::F64, 82),
                            random({64}, DType::F64, 83)},
                           random({8, 128, 64}, DType::F64, 84));
  }
}

TEST(BatchNorm, MatchesTorchAutogradAndRunningStats) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  for (int kind : {kBatchTrain, kBatchEval}) {
    const bool training = kind == kBatchTrain;
    Tensor x = random({4, 128, 64}, DType::F64, 85, true), w = random({64}, DType::F64, 86, true);
    Tensor b = random({64}, DType::F64, 87, true), dy = random({4, 128, 64}, DType::F64, 88);
    Tensor rm = random({64}, DType::F64, 89);
    Tensor rv = Tensor::full({64}, 1.3, DType::F64);
    const Tensor rm0 = rm.clone(), rv0 = rv.clone();
    Tensor y = batch_norm(x, w, b, rm, rv, training, 0.3, 1e-4);
    y.backward(dy);
    auto ref =
        ssm::testing::run_torch("norm_ref.py", {{"kind", Tensor::scalar(kind, DType::F64)},
                                                {"eps", Tensor::scalar(1e-4, DType::F64)},
                                                {"momentum", Tensor::scalar(0.3, DType::F64)},
                                                {"x", x},
                                                {"w", w},
                                                {"b", b},
                                                {"running_mean", rm0},
                                                {"running_var", rv0},
                                                {"dy", dy}});
    EXPECT_LT(rel_error(y, ref["y"]), 1e-12) << "training " << training;
    EXPECT_LT(rel_error(x.grad(), ref["gx"]), 1e-11) << "training " << training;
    EXPECT_LT(rel_error(w.grad(), ref["gw"]), 1e-12) << "training " << training;
    EXPECT_LT(rel_error(b.grad(), ref["gb"]), 1e-12) << "training " << training;
    EXPECT_LT(rel_error(rm, ref["running_mean"]), 1e-14) << "training " << training;
    EXPECT_LT(rel_error(rv, ref["running_var"]), 1e-14) << "training " << training;
  }
}

TEST(BatchNorm, RejectsBadInputs) {
  Tensor x = random({2, 3, 4}, DType::F64, 90);
  Tensor rm = Tensor::zeros({4}, DType::F64), rv = Tensor::ones({4}, DType::F64);
  Tensor none, bad = Tensor::zeros({3}, DType::F64);
  EXPECT_SSM_ERROR(batch_norm(x, Tensor(), Tensor(), none, none, false), "batch_norm",
                   "'running_mean'", "eval");
  EXPECT_SSM_ERROR(batch_norm(x, Tensor(), Tensor(), bad, rv, true), "batch_norm", "'running_mean'",
                   "(4)", "(3)");
  EXPECT_SSM_ERROR(batch_norm(x, random({5}, DType::F64, 91), Tensor(), rm, rv, true), "batch_norm",
                   "'weight'", "(4)", "(5)");
  EXPECT_SSM_ERROR(batch_norm(random({1, 1, 4}, DType::F64, 92), Tensor(), Tensor(), rm, rv, true),
                   "batch_norm", "more than one value", "(1, 1, 4)");
  EXPECT_SSM_ERROR(batch_norm(random({4}, DType::F64, 93), Tensor(), Tensor(), rm, rv, true),
                   "batch_norm", "'x'", "(B, L, D)", "(4)");
  EXPECT_SSM_ERROR(batch_norm(x, Tensor(), Tensor(), rm, rv, true, 1.5), "batch_norm", "'momentum'",
                   "1.5");
}
