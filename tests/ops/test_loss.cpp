// mse_loss and cross_entropy against plain float64 loops, finite differences and PyTorch.
#include <cmath>
#include <limits>

#include "ssm/autograd/gradcheck.h"
#include "ssm/ops/loss.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using ssm::testing::random;
using ssm::testing::rel_error;

namespace {

enum TorchKind { kMse = 0, kCrossEntropy = 1 };

double naive_mse(const Tensor& p, const Tensor& t) {
  const std::vector<double> P = p.to_vector(), T = t.to_vector();
  double s = 0;
  for (size_t i = 0; i < P.size(); ++i) s += (P[i] - T[i]) * (P[i] - T[i]);
  return s / P.size();
}

// Mean over rows with target != ignore of (1 − ε)(−log p_t) + ε · mean_c(−log p_c).
double naive_cross_entropy(const Tensor& logits, const std::vector<int64_t>& targets,
                           int64_t ignore, double eps) {
  const int64_t C = logits.size(-1), N = logits.numel() / C;
  const std::vector<double> X = logits.to_vector();
  double total = 0;
  int64_t counted = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (targets[r] == ignore) continue;
    double mx = -INFINITY, sum = 0;
    for (int64_t c = 0; c < C; ++c) mx = std::max(mx, X[r * C + c]);
    for (int64_t c = 0; c < C; ++c) sum += std::exp(X[r * C + c] - mx);
    auto neg_log_p = [&](int64_t c) { return -(X[r * C + c] - mx - std::log(sum)); };
    double uniform = 0;
    for (int64_t c = 0; c < C; ++c) uniform += neg_log_p(c) / C;
    total += (1 - eps) * neg_log_p(targets[r]) + eps * uniform;
    ++counted;
  }
  return total / counted;
}

// Class ids in [0, C) from a fixed generator, with every `ignore_every`-th set to ignore.
std::vector<int64_t> make_targets(int64_t n, int64_t C, uint64_t seed, int64_t ignore_every = 0,
                                  int64_t ignore = -100) {
  Generator g(seed);
  std::vector<int64_t> t(n);
  for (int64_t i = 0; i < n; ++i)
    t[i] = ignore_every > 0 && i % ignore_every == 1 ? ignore : static_cast<int64_t>(g.below(C));
  return t;
}

Tensor as_index_tensor(const std::vector<int64_t>& v, const Shape& shape, DType dtype) {
  if (dtype == DType::I64) return Tensor::from_data<int64_t>(v, shape);
  return Tensor::from_data<int32_t>(std::vector<int32_t>(v.begin(), v.end()), shape);
}

}  // namespace

// ----------------------------------------------------------------------------- mse_loss

TEST(MseLoss, MatchesNaive) {
  Tensor p = random({3, 4, 5}, DType::F64, 1), t = random({3, 4, 5}, DType::F64, 2);
  Tensor loss = mse_loss(p, t);
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_NEAR(loss.item(), naive_mse(p, t), 1e-14);
  Tensor big_p = random({300, 200}, DType::F64, 3), big_t = random({300, 200}, DType::F64, 4);
  EXPECT_NEAR(mse_loss(big_p, big_t).item(), naive_mse(big_p, big_t), 1e-12);
}

TEST(MseLoss, GradientsMatchFiniteDifferences) {
  auto f = [](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1]); };
  const GradcheckResult r =
      gradcheck(f, {random({4, 3}, DType::F64, 5, true), random({4, 3}, DType::F64, 6, true)});
  EXPECT_TRUE(r.ok) << r.report;
}

TEST(MseLoss, Float32AgreesWithFloat64) {
  Tensor p = random({64, 512}, DType::F64, 7, true), t = random({64, 512}, DType::F64, 8);
  Tensor p32 = p.detach().to(DType::F32).requires_grad_();
  Tensor l64 = mse_loss(p, t), l32 = mse_loss(p32, t.to(DType::F32));
  l64.backward();
  l32.backward();
  EXPECT_NEAR(l32.item(), l64.item(), 1e-6 * l64.item());
  EXPECT_LT(rel_error(p32.grad(), p.grad()), 1e-6);
}

TEST(MseLoss, MatchesTorchAutograd) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  Tensor p = random({5, 6}, DType::F64, 9, true), t = random({5, 6}, DType::F64, 10, true);
  Tensor loss = mse_loss(p, t);
  loss.backward(Tensor::scalar(0.7, DType::F64));
  auto ref = ssm::testing::run_torch("loss_ref.py", {{"kind", Tensor::scalar(kMse, DType::F64)},
                                                     {"prediction", p},
                                                     {"target", t},
                                                     {"dy", Tensor::scalar(0.7, DType::F64)}});
  EXPECT_LT(rel_error(loss, ref["loss"]), 1e-14);
  EXPECT_LT(rel_error(p.grad(), ref["gprediction"]), 1e-14);
  EXPECT_LT(rel_error(t.grad(), ref["gtarget"]), 1e-14);
}

TEST(MseLoss, RejectsBadInputs) {
  Tensor p = random({2, 3}, DType::F64, 11);
  EXPECT_SSM_ERROR(mse_loss(p, random({3, 2}, DType::F64, 12)), "mse_loss", "'target'", "(2, 3)",
                   "(3, 2)");
  EXPECT_SSM_ERROR(mse_loss(p, random({2, 3}, DType::F32, 13)), "mse_loss", "'target'", "float32");
  EXPECT_SSM_ERROR(mse_loss(Tensor::empty({0}, DType::F64), Tensor::empty({0}, DType::F64)),
                   "mse_loss", "'prediction'", "(0)");
}

// ------------------------------------------------------------------------ cross_entropy

TEST(CrossEntropy, MatchesNaiveWithIgnoreIndexAndLabelSmoothing) {
  Tensor logits = random({9, 7}, DType::F64, 20);
  const std::vector<int64_t> t = make_targets(9, 7, 21, /*ignore_every=*/3);
  for (DType index_type : {DType::I32, DType::I64})
    for (double eps : {0.0, 0.1, 1.0}) {
      Tensor loss = cross_entropy(logits, as_index_tensor(t, {9}, index_type), -100, eps);
      EXPECT_EQ(loss.dim(), 0);
      EXPECT_NEAR(loss.item(), naive_cross_entropy(logits, t, -100, eps), 1e-13) << "eps " << eps;
    }
  // A custom ignore_index, and classes-last logits with extra leading dims.
  Tensor l3 = random({2, 5, 4}, DType::F64, 22);
  const std::vector<int64_t> t3 = make_targets(10, 4, 23, 4, 3);
  EXPECT_NEAR(cross_entropy(l3, as_index_tensor(t3, {2, 5}, DType::I64), 3, 0.2).item(),
              naive_cross_entropy(l3, t3, 3, 0.2), 1e-13);
}

TEST(CrossEntropy, LargeLogitsStayFinite) {
  // exp(1e4) overflows: the log-sum-exp must subtract the row maximum.
  Tensor logits = Tensor::from_vector({1e4, 1e4 + 1, 1e4 - 2, -5e3, -5e3 + 3, -5e3}, {2, 3});
  Tensor shifted = Tensor::from_vector({0, 1, -2, 0, 3, 0}, {2, 3});
  Tensor t = Tensor::from_data<int64_t>({1, 0}, {2});
  const double a = cross_entropy(logits, t, -100, 0.1).item();
  EXPECT_TRUE(std::isfinite(a));
  EXPECT_NEAR(a, cross_entropy(shifted, t, -100, 0.1).item(), 1e-4);
}

TEST(CrossEntropy, GradientsMatchFiniteDifferences) {
  const std::vector<int64_t> t = make_targets(6, 5, 24, 4);
  Tensor targets = as_index_tensor(t, {6}, DType::I64);
  for (double eps : {0.0, 0.3}) {
    auto f = [&](const std::vector<Tensor>& in) {
      return cross_entropy(in[0], targets, -100, eps);
    };
    const GradcheckResult r = gradcheck(f, {random({6, 5}, DType::F64, 25, true)});
    EXPECT_TRUE(r.ok) << "eps " << eps << "\n" << r.report;
  }
}

TEST(CrossEntropy, AllIgnoredGivesZeroLossAndZeroGradient) {
  Tensor logits = random({3, 4}, DType::F64, 26, true);
  Tensor t = Tensor::from_data<int32_t>({-1, -1, -1}, {3});
  Tensor loss = cross_entropy(logits, t, -1, 0.1);
  EXPECT_EQ(loss.item(), 0.0);
  loss.backward();
  for (double g : logits.grad().to_vector()) EXPECT_EQ(g, 0.0);
}

TEST(CrossEntropy, Float32AgreesWithFloat64) {
  const int64_t N = 256, C = 300;  // large enough to run threaded
  Tensor logits = random({N, C}, DType::F64, 27, true);
  Tensor l32 = logits.detach().to(DType::F32).requires_grad_();
  Tensor t = as_index_tensor(make_targets(N, C, 28, 5), {N}, DType::I32);
  Tensor a = cross_entropy(logits, t, -100, 0.1), b = cross_entropy(l32, t, -100, 0.1);
  a.backward();
  b.backward();
  EXPECT_NEAR(b.item(), a.item(), 1e-6 * a.item());
  EXPECT_LT(rel_error(l32.grad(), logits.grad()), 1e-5);
}

TEST(CrossEntropy, Float32GradientsStayAccurateForLargeLogits) {
  // Logits near 1e4: exp(x − lse) with lse rounded to float32 would be off by ~1e-3.
  const int64_t N = 16, C = 40;
  std::vector<double> v = random({N, C}, DType::F64, 33).to_vector();
  for (double& x : v) x = static_cast<float>(x + 1e4);  // the values float32 holds exactly
  Tensor logits = Tensor::from_vector(v, {N, C}, DType::F64).requires_grad_();
  Tensor l32 = logits.detach().to(DType::F32).requires_grad_();
  Tensor t = as_index_tensor(make_targets(N, C, 34), {N}, DType::I64);
  Tensor a = cross_entropy(logits, t, -100, 0.1), b = cross_entropy(l32, t, -100, 0.1);
  a.backward();
  b.backward();
  EXPECT_NEAR(b.item(), a.item(), 1e-5 * a.item());
  EXPECT_LT(rel_error(l32.grad(), logits.grad()), 1e-5);
}

TEST(CrossEntropy, MatchesTorchAutogradWithIgnoreIndexAndLabelSmoothing) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  const int64_t N = 40, C = 11;
  for (double eps : {0.0, 0.15}) {
    Tensor logits = random({N, C}, DType::F64, 29, true);
    const std::vector<int64_t> t = make_targets(N, C, 30, 3, 5);  // ignore_index 5 is a class
    Tensor targets = as_index_tensor(t, {N}, DType::I64);
    Tensor loss = cross_entropy(logits, targets, 5, eps);
    loss.backward(Tensor::scalar(1.3, DType::F64));
    auto ref = ssm::testing::run_torch("loss_ref.py",
                                       {{"kind", Tensor::scalar(kCrossEntropy, DType::F64)},
                                        {"logits", logits},
                                        {"targets", targets.to(DType::F64)},
                                        {"ignore_index", Tensor::scalar(5, DType::F64)},
                                        {"label_smoothing", Tensor::scalar(eps, DType::F64)},
                                        {"dy", Tensor::scalar(1.3, DType::F64)}});
    EXPECT_LT(rel_error(loss, ref["loss"]), 1e-13) << "eps " << eps;
    EXPECT_LT(rel_error(logits.grad(), ref["glogits"]), 1e-12) << "eps " << eps;
  }
}

TEST(CrossEntropy, RejectsBadInputs) {
  Tensor logits = random({3, 4}, DType::F64, 31);
  EXPECT_SSM_ERROR(cross_entropy(logits, Tensor::from_data<int64_t>({0, 4, 1}, {3})),
                   "cross_entropy", "'targets'", "class id 4", "index 1", "[0, 4)");
  EXPECT_SSM_ERROR(cross_entropy(logits, Tensor::from_data<int32_t>({-3, 0, 1}, {3})),
                   "cross_entropy", "'targets'", "class id -3", "index 0");
  EXPECT_SSM_ERROR(cross_entropy(logits, Tensor::from_data<int64_t>({0, 1}, {2})), "cross_entropy",
                   "'targets'", "(3)", "(2)");
  EXPECT_SSM_ERROR(cross_entropy(logits, random({3}, DType::F64, 32)), "cross_entropy", "'targets'",
                   "float64");
  EXPECT_SSM_ERROR(cross_entropy(logits, Tensor::from_data<int64_t>({0, 1, 2}, {3}), -100, 1.5),
                   "cross_entropy", "'label_smoothing'", "1.5");
  Tensor bad = logits.clone();
  bad.set({2, 1}, std::numeric_limits<double>::quiet_NaN());
  EXPECT_SSM_ERROR(cross_entropy(bad, Tensor::from_data<int64_t>({0, 1, 2}, {3})), "cross_entropy",
                   "'logits'", "row 2", "NaN");
  bad.set({2, 1}, INFINITY);
  EXPECT_SSM_ERROR(cross_entropy(bad, Tensor::from_data<int64_t>({0, 1, 2}, {3})), "cross_entropy",
                   "'logits'", "row 2");
  // ...but an ignored row may hold anything.
  EXPECT_NO_THROW(cross_entropy(bad, Tensor::from_data<int64_t>({0, 1, -100}, {3})));
}
