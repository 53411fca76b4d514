// softmax and log_softmax against plain float64 loops and finite differences.
#include <cmath>

#include "ssm/autograd/gradcheck.h"
#include "ssm/ops/norm.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::random;
using ssm::testing::rel_error;

namespace {

// Softmax of x along dim, written out over the (outer, n, inner) index split.
Tensor naive_softmax(const Tensor& x, int64_t dim, bool log) {
  const int64_t d = dim < 0 ? dim + x.dim() : dim;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= x.size(i);
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.size(i);
  const int64_t n = x.size(d);
  const std::vector<double> X = x.to_vector();
  std::vector<double> Y(X.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      auto at = [&](int64_t i) { return (o * n + i) * inner + j; };
      double mx = -INFINITY, sum = 0;
      for (int64_t i = 0; i < n; ++i) mx = std::max(mx, X[at(i)]);
      for (int64_t i = 0; i < n; ++i) sum += std::exp(X[at(i)] - mx);
      for (int64_t i = 0; i < n; ++i)
        Y[at(i)] = log ? X[at(i)] - mx - std::log(sum) : std::exp(X[at(i)] - mx) / sum;
    }
  return Tensor::from_vector(Y, x.shape(), DType::F64);
}

}  // namespace

TEST(Softmax, MatchesNaiveAlongEveryDim) {
  Tensor x = random({3, 4, 5}, DType::F64, 1);
  for (int64_t dim : {0, 1, 2, -1, -3}) {
    EXPECT_LT(rel_error(softmax(x, dim), naive_softmax(x, dim, false)), 1e-14) << "dim " << dim;
    EXPECT_LT(rel_error(log_softmax(x, dim), naive_softmax(x, dim, true)), 1e-14) << "dim " << dim;
  }
  // An inner extent over one column block (and not a multiple of it), and a strided input.
  Tensor wide = random({2, 3, 300}, DType::F64, 2);
  EXPECT_LT(rel_error(softmax(wide, 1), naive_softmax(wide, 1, false)), 1e-14);
  EXPECT_LT(rel_error(log_softmax(wide, 1), naive_softmax(wide, 1, true)), 1e-14);
  Tensor strided = random({5, 4}, DType::F64, 3).transpose(0, 1);
  EXPECT_LT(rel_error(softmax(strided), naive_softmax(strided.contiguous(), -1, false)), 1e-14);
}

TEST(Softmax, RowsSumToOneAndLargeLogitsStayFinite) {
  // exp(1000) overflows; the max-subtracted form must give softmax({0, 1, 2}).
  Tensor big = Tensor::from_vector({1000, 1001, 1002, -1000, -1001, -1002}, {2, 3}, DType::F64);
  Tensor small = Tensor::from_vector({0, 1, 2, 0, -1, -2}, {2, 3}, DType::F64);
  EXPECT_LT(rel_error(softmax(big), softmax(small)), 1e-15);
  EXPECT_LT(rel_error(log_softmax(big.to(DType::F32)), log_softmax(small).to(DType::F32)), 1e-6);
  // NaN stays visible in its own row (and only there) rather than being silently dropped.
  Tensor with_nan = random({2, 5}, DType::F32, 10);
  with_nan.set({1, 3}, NAN);
  Tensor q = softmax(with_nan);
  EXPECT_TRUE(std::isnan(q.at({1, 0})));
  EXPECT_FALSE(std::isnan(q.at({0, 0})));
  Tensor p = softmax(random({7, 33}, DType::F32, 4));
  for (int64_t r = 0; r < 7; ++r) {
    double s = 0;
    for (int64_t c = 0; c < 33; ++c) s += p.at({r, c});
    EXPECT_NEAR(s, 1.0, 1e-6);
  }
}

TEST(Softmax, GradientsMatchFiniteDifferences) {
  for (int64_t dim : {0, 1, -1}) {
    auto f = [dim](const std::vector<Tensor>& in) { return softmax(in[0], dim); };
    auto g = [dim](const std::vector<Tensor>& in) { return log_softmax(in[0], dim); };
    const GradcheckResult rf = gradcheck(f, {random({3, 4, 5}, DType::F64, 5, true)});
    const GradcheckResult rg = gradcheck(g, {random({3, 4, 5}, DType::F64, 6, true)});
    EXPECT_TRUE(rf.ok) << "softmax dim " << dim << "\n" << rf.report;
    EXPECT_TRUE(rg.ok) << "log_softmax dim " << dim << "\n" << rg.report;
  }
}

TEST(Softmax, Float32AgreesWithFloat64IncludingThreadedSizes) {
  for (int64_t dim : {-1, 1}) {
    for (bool log : {false, true}) {
      Tensor x64 = random({16, 64, 48}, DType::F64, 7).requires_grad_();
      Tensor x32 = x64.detach().to(DType::F32).requires_grad_();
      Tensor dy = random({16, 64, 48}, DType::F64, 8);
      Tensor y64 = log ? log_softmax(x64, dim) : softmax(x64, dim);
      Tensor y32 = log ? log_softmax(x32, dim) : softmax(x32, dim);
      y64.backward(dy);
      y32.backward(dy.to(DType::F32));
      EXPECT_LT(rel_error(y32, y64), 1e-6) << "dim " << dim << " log " << log;
      EXPECT_LT(rel_error(x32.grad(), x64.grad()), 1e-5) << "dim " << dim << " log " << log;
      EXPECT_LT(rel_error(y64, naive_softmax(x64, dim, log)), 1e-14);
    }
  }
}

TEST(Softmax, RejectsBadInputs) {
  Tensor x = random({2, 3}, DType::F64, 9);
  EXPECT_SSM_ERROR(softmax(x, 2), "softmax", "'dim'", "(2, 3)", "2");
  EXPECT_SSM_ERROR(log_softmax(x, -3), "log_softmax", "'dim'", "-3");
  EXPECT_SSM_ERROR(softmax(Tensor::zeros({3}, DType::I64)), "softmax", "'x'", "int64");
  EXPECT_SSM_ERROR(softmax(Tensor::scalar(1.0, DType::F64)), "softmax", "'x'", "()");
}
