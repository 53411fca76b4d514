#include <cmath>

#include "ssm/optim/clip_grad.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::optim;
using ssm::testing::random;

namespace {
double plain_norm(const std::vector<Tensor>& grads) {
  double s = 0;
  for (auto& g : grads)
    for (double x : g.to_vector()) s += x * x;
  return std::sqrt(s);
}
}  // namespace

TEST(ClipGradNorm, ScalesAllGradientsWhenAboveMax) {
  Tensor a = random({3, 4}, DType::F64, 1, true), b = random({5}, DType::F32, 2, true);
  Tensor c = random({2}, DType::F64, 3, true);  // no gradient: ignored
  Tensor ga = random({3, 4}, DType::F64, 4), gb = random({5}, DType::F32, 5);
  a.set_grad(ga), b.set_grad(gb);
  const double norm = plain_norm({ga, gb});
  ASSERT_GT(norm, 1.0);
  const double returned = clip_grad_norm({a, b, c}, 1.0);
  EXPECT_NEAR(returned, norm, 1e-6 * norm);
  EXPECT_NEAR(plain_norm({a.grad(), b.grad()}), 1.0, 1e-5);
  // Direction is kept: each element scaled by the same factor.
  const double coef = 1.0 / (norm + 1e-6);
  auto va = a.grad().to_vector(), v0 = ga.to_vector();
  for (size_t i = 0; i < va.size(); ++i) EXPECT_NEAR(va[i], v0[i] * coef, 1e-14);
  EXPECT_FALSE(c.grad().defined());
  // The original gradient tensors were not modified in place.
  EXPECT_EQ(ga.to_vector(), v0);
}

TEST(ClipGradNorm, LeavesSmallGradientsAlone) {
  Tensor a = random({10}, DType::F64, 1, true);
  Tensor g = random({10}, DType::F64, 2);
  a.set_grad(g);
  const double norm = plain_norm({g});
  EXPECT_NEAR(clip_grad_norm({a}, norm * 2), norm, 1e-12);
  EXPECT_EQ(a.grad().to_vector(), g.to_vector());
  EXPECT_NEAR(grad_norm({a}), norm, 1e-12);
}

TEST(ClipGradNorm, SharedGradientScaledOnce) {
  Tensor a = random({4}, DType::F64, 1, true), b = random({4}, DType::F64, 2, true);
  Tensor g = random({4}, DType::F64, 3);
  a.set_grad(g), b.set_grad(g);  // one storage behind both gradients
  const double norm = clip_grad_norm({a, b}, 0.5);
  EXPECT_NEAR(norm, std::sqrt(2.0) * plain_norm({g}), 1e-12);
  EXPECT_NEAR(plain_norm({a.grad(), b.grad()}), 0.5, 1e-6);
}

TEST(ClipGradNorm, NonFiniteNormLeavesGradientsAndBadMax) {
  Tensor a = random({3}, DType::F64, 1, true);
  a.set_grad(Tensor::from_vector({1.0, NAN, 2.0}, {3}, DType::F64));
  EXPECT_TRUE(std::isnan(clip_grad_norm({a}, 1.0)));
  EXPECT_EQ(a.grad().to_vector()[0], 1.0);
  EXPECT_SSM_ERROR(clip_grad_norm({a}, 0.0), "clip_grad_norm", "max_norm", "0");
  EXPECT_SSM_ERROR(clip_grad_norm({a}, -1.0), "clip_grad_norm", "max_norm", "-1");
}
