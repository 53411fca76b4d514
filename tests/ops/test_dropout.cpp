// dropout: the mask against one drawn by hand from the same seed, identity cases, the drop
// rate and mean on a large tensor, gradients, bad p.
#include <cmath>

#include "ssm/autograd/gradcheck.h"
#include "ssm/ops/dropout.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::random;
using ssm::testing::rel_error;

namespace {

// Element i is dropped when the i-th uniform draw is < p; kept ones are scaled by 1/(1 − p).
Tensor plain_dropout(const Tensor& x, double p, uint64_t seed) {
  Generator gen(seed);
  std::vector<double> v = x.to_vector();
  for (double& e : v) e = gen.uniform() < p ? 0.0 : e / (1.0 - p);
  return Tensor::from_vector(v, x.shape(), DType::F64);
}

}  // namespace

TEST(Dropout, MaskMatchesPlainDrawsFromTheSameSeed) {
  Tensor x = random({4, 5, 6}, DType::F64, 301);
  for (double p : {0.1, 0.5, 0.9}) {
    Generator gen(77);
    Tensor y = dropout(x, p, /*training=*/true, gen);
    EXPECT_LT(rel_error(y, plain_dropout(x, p, 77)), 1e-15) << "p " << p;
  }
  // a strided view is masked in its own row-major order
  Tensor view = x.permute({2, 0, 1});
  Generator gen(78);
  EXPECT_LT(rel_error(dropout(view, 0.3, true, gen), plain_dropout(view, 0.3, 78)), 1e-15);
}

TEST(Dropout, IdentityWhenEvaluatingOrPIsZero) {
  Tensor x = random({3, 4}, DType::F64, 302);
  Generator gen(1), untouched(1);
  Tensor eval = dropout(x, 0.5, /*training=*/false, gen);
  Tensor zero_p = dropout(x, 0.0, /*training=*/true, gen);
  EXPECT_EQ(eval.to_vector(), x.to_vector());
  EXPECT_EQ(zero_p.to_vector(), x.to_vector());
  EXPECT_EQ(gen.next_u64(), untouched.next_u64()) << "identity cases must not consume draws";
}

TEST(Dropout, SuccessiveCallsDrawFreshMasks) {
  Tensor x = Tensor::ones({1000}, DType::F64);
  Generator gen(5);
  Tensor a = dropout(x, 0.5, true, gen), b = dropout(x, 0.5, true, gen);
  EXPECT_NE(a.to_vector(), b.to_vector());
}

TEST(Dropout, DropRateAndMeanOnALargeTensor) {
  const int64_t n = 200000;  // also takes the parallel multiply
  const double p = 0.3;
  Tensor x = Tensor::ones({n}, DType::F64);
  Generator gen(9);
  Tensor y = dropout(x, p, true, gen);
  int64_t dropped = 0;
  double total = 0;
  for (double v : y.to_vector()) {
    if (v == 0.0)
      ++dropped;
    else
      EXPECT_DOUBLE_EQ(v, 1.0 / (1.0 - p));
    total += v;
  }
  // standard deviation of the drop fraction: sqrt(p(1 − p)/n) ≈ 0.001; allow 5σ
  EXPECT_NEAR(static_cast<double>(dropped) / n, p, 0.005);
  // E[y] = x: the mean's standard deviation is sqrt(p/(1 − p)/n) ≈ 0.0015; allow 5σ
  EXPECT_NEAR(total / n, 1.0, 0.0075);
}

TEST(Dropout, GradientUsesTheSameMask) {
  Tensor x = random({3, 7}, DType::F64, 303, true);
  // A fresh generator with a fixed seed on every call, so each evaluation sees one mask.
  auto r = gradcheck(
      [](const std::vector<Tensor>& in) {
        Generator gen(11);
        return dropout(in[0], 0.4, true, gen);
      },
      {x});
  EXPECT_TRUE(r.ok) << r.report;
  // the gradient is exactly the mask: 0 where dropped, 1/(1 − p) where kept
  x.zero_grad();
  Generator gen(12);
  Tensor y = dropout(x, 0.4, true, gen);
  y.backward(Tensor::ones(y.shape(), DType::F64));
  Tensor expected = plain_dropout(Tensor::ones({3, 7}, DType::F64), 0.4, 12);
  EXPECT_LT(rel_error(x.grad(), expected), 1e-15);
}

TEST(DropoutFloat32, SameMaskAsFloat64) {
  Tensor x32 = random({50, 40}, DType::F32, 304);
  Tensor x64 = x32.to(DType::F64);
  Generator g32(13), g64(13);
  Tensor y32 = dropout(x32, 0.25, true, g32), y64 = dropout(x64, 0.25, true, g64);
  EXPECT_EQ(y32.dtype(), DType::F32);
  EXPECT_LT(rel_error(y32, y64), 1e-6);
  const auto v32 = y32.to_vector(), v64 = y64.to_vector();
  for (size_t i = 0; i < v32.size(); ++i) EXPECT_EQ(v32[i] == 0.0, v64[i] == 0.0) << i;
}

TEST(DropoutErrors, PMustLieInZeroOne) {
  Tensor x = random({4});
  Generator gen(1);
  EXPECT_SSM_ERROR(dropout(x, -0.1, true, gen), "dropout", "argument 'p'", "[0, 1)", "-0.1");
  EXPECT_SSM_ERROR(dropout(x, 1.0, true, gen), "dropout", "argument 'p'", "[0, 1)");
  EXPECT_SSM_ERROR(dropout(x, 1.5, false, gen), "dropout", "argument 'p'", "1.5");
  EXPECT_SSM_ERROR(dropout(x, std::nan(""), true, gen), "dropout", "argument 'p'", "nan");
  EXPECT_SSM_ERROR(dropout(Tensor::arange(4, DType::I64), 0.5, true, gen), "dropout",
                   "argument 'x'", "int64");
}
