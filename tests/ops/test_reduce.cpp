// sum / mean over dim lists: forward against a plain float64 loop, gradients by finite
// differences, bad dims, float32 agreement.
#include <cmath>
#include <set>

#include "ssm/autograd/gradcheck.h"
#include "ssm/ops/reduce.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::random;
using ssm::testing::rel_error;

namespace {

// Visits every element of x in row-major order and adds it to the output slot whose index
// is x's index with the reduced dims dropped (or set to 0 with keepdim).
Tensor plain_reduce(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool mean) {
  const int64_t nd = x.dim();
  std::set<int64_t> reduced;
  for (int64_t d : dims) reduced.insert(d < 0 ? d + nd : d);
  Shape out_shape, keep_shape;
  double count = 1;
  for (int64_t d = 0; d < nd; ++d) {
    if (reduced.count(d)) {
      count *= x.shape()[d];
      keep_shape.push_back(1);
      if (keepdim) out_shape.push_back(1);
    } else {
      keep_shape.push_back(x.shape()[d]);
      out_shape.push_back(x.shape()[d]);
    }
  }
  const std::vector<double> v = x.to_vector();
  std::vector<double> out(shape_numel(keep_shape), 0.0);
  for (int64_t flat = 0; flat < x.numel(); ++flat) {
    int64_t rest = flat, o = 0, stride = 1;
    for (int64_t d = nd - 1; d >= 0; --d) {
      const int64_t idx = rest % x.shape()[d];
      rest /= x.shape()[d];
      if (!reduced.count(d)) o += idx * stride;
      stride *= keep_shape[d];
    }
    out[o] += v[flat];
  }
  if (mean)
    for (double& e : out) e /= count;
  return Tensor::from_vector(out, out_shape, DType::F64);
}

void expect_matches(const Tensor& x, const std::vector<int64_t>& dims, double bound) {
  for (bool keepdim : {false, true}) {
    const std::string what = fmt::format("x {} dims ({}) keepdim {}", shape_str(x.shape()),
                                         fmt::join(dims, ", "), keepdim);
    EXPECT_LT(rel_error(sum(x, dims, keepdim), plain_reduce(x, dims, keepdim, false)), bound)
        << "sum " << what;
    EXPECT_LT(rel_error(mean(x, dims, keepdim), plain_reduce(x, dims, keepdim, true)), bound)
        << "mean " << what;
  }
}

}  // namespace

TEST(Reduce, MatchesPlainLoopForEveryDimSet) {
  Tensor x = random({3, 4, 5, 2}, DType::F64, 101);
  const std::vector<std::vector<int64_t>> dim_sets = {
      {},     {0},    {1},    {3},    {-1},         {0, 1},   {1, 2},
      {2, 3}, {0, 2}, {0, 3}, {1, 3}, {0, 1, 2, 3}, {-1, -3}, {3, 0, 1},
  };
  for (const auto& dims : dim_sets) expect_matches(x, dims, 1e-14);
}

TEST(Reduce, SizeOneDimsDoNotBreakTheBlockDetection) {
  Tensor x = random({2, 1, 3, 1, 4}, DType::F64, 102);
  for (const auto& dims :
       std::vector<std::vector<int64_t>>{{1, 3}, {0, 2}, {2, 4}, {0, 4}, {1}, {0, 1, 2}, {2, 3, 4}})
    expect_matches(x, dims, 1e-14);
}

TEST(Reduce, ReadsStridedViews) {
  Tensor x = random({4, 5, 6}, DType::F64, 103).permute({2, 0, 1}).narrow(2, 1, 3);
  ASSERT_FALSE(x.is_contiguous());
  for (const auto& dims : std::vector<std::vector<int64_t>>{{1}, {0, 2}, {-1}})
    expect_matches(x, dims, 1e-14);
}

TEST(Reduce, LargeTensorsTakeTheParallelPaths) {
  expect_matches(random({4, 50000}, DType::F64, 104), {-1}, 1e-12);    // rows
  expect_matches(random({50000, 8}, DType::F64, 105), {0}, 1e-12);     // columns
  expect_matches(random({100000}, DType::F64, 106), {0}, 1e-12);       // one long row
  expect_matches(random({3, 20000, 7}, DType::F64, 107), {1}, 1e-12);  // (A, K, N)
  expect_matches(random({300, 400}, DType::F64, 108), {0, 1}, 1e-12);
  expect_matches(random({40, 30, 50}, DType::F64, 109), {0, 2}, 1e-12);  // permuted
}

TEST(Reduce, SumAllAndMeanAllGiveScalars) {
  Tensor x = random({3, 4, 5}, DType::F64, 110);
  Tensor s = sum_all(x), m = mean_all(x);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(m.dim(), 0);
  double plain = 0;
  for (double v : x.to_vector()) plain += v;
  EXPECT_NEAR(s.item(), plain, 1e-13 * std::abs(plain) + 1e-15);
  EXPECT_NEAR(m.item(), plain / 60.0, 1e-13 * std::abs(plain) + 1e-15);
  Tensor zero_d = Tensor::scalar(2.5, DType::F64);
  EXPECT_EQ(sum_all(zero_d).item(), 2.5);
  EXPECT_EQ(mean_all(zero_d).item(), 2.5);
}

TEST(Reduce, EmptyReducedDimGivesZeroSumAndNanMean) {
  Tensor x = Tensor::empty({3, 0}, DType::F64);
  EXPECT_EQ(sum(x, {1}).to_vector(), std::vector<double>(3, 0.0));
  EXPECT_TRUE(std::isnan(mean(x, {1}).at({0})));
  EXPECT_EQ(sum(x, {0}).numel(), 0);
}

TEST(Reduce, Gradcheck) {
  const std::vector<std::pair<std::vector<int64_t>, bool>> cases = {
      {{1}, false}, {{1}, true}, {{0, 2}, false}, {{0, 2}, true}, {{-1}, false}, {{0, 1, 2}, true},
  };
  for (const auto& [dims, keepdim] : cases) {
    Tensor x = random({2, 3, 4}, DType::F64, 111, true);
    auto rs =
        gradcheck([&](const std::vector<Tensor>& in) { return sum(in[0], dims, keepdim); }, {x});
    EXPECT_TRUE(rs.ok) << "sum\n" << rs.report;
    auto rm =
        gradcheck([&](const std::vector<Tensor>& in) { return mean(in[0], dims, keepdim); }, {x});
    EXPECT_TRUE(rm.ok) << "mean\n" << rm.report;
  }
  Tensor x = random({3, 5}, DType::F64, 112, true);
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return sum_all(in[0]); }, {x}).ok);
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return mean_all(in[0]); }, {x}).ok);
  // through a strided view
  auto rv = gradcheck(
      [](const std::vector<Tensor>& in) { return mean(in[0].transpose(0, 1), {0}); }, {x});
  EXPECT_TRUE(rv.ok) << rv.report;
}

TEST(Reduce, MeanGradientIsOneOverCount) {
  Tensor x = random({4, 6}, DType::F64, 113, true);
  mean(x, {1}).backward(Tensor::ones({4}, DType::F64));
  for (double g : x.grad().to_vector()) EXPECT_DOUBLE_EQ(g, 1.0 / 6.0);
}

TEST(ReduceErrors, BadDimsAndDtypes) {
  Tensor x = random({2, 3});
  EXPECT_SSM_ERROR(sum(x, {2}), "sum", "dimension 2", "2-d");
  EXPECT_SSM_ERROR(mean(x, {-3}), "mean", "dimension -3", "2-d");
  EXPECT_SSM_ERROR(sum(x, {1, -1}), "sum", "'dims'", "twice");
  EXPECT_SSM_ERROR(sum(Tensor::arange(4, DType::I64), {0}), "sum", "argument 'x'", "int64");
  EXPECT_SSM_ERROR(mean_all(Tensor()), "mean_all", "undefined");
}

TEST(ReduceFloat32, AgreesWithFloat64) {
  // Sums accumulate in double, so float32 differs only by input and final rounding.
  for (const auto& [shape, dims] : std::vector<std::pair<Shape, std::vector<int64_t>>>{
           {{4, 50000}, {1}}, {{50000, 8}, {0}}, {{100000}, {0}}, {{40, 30, 50}, {0, 2}}}) {
    Tensor x32 = random(shape, DType::F32, 114).requires_grad_();
    Tensor x64 = x32.detach().to(DType::F64).requires_grad_();
    Tensor y32 = mean(x32, dims), y64 = mean(x64, dims);
    EXPECT_EQ(y32.dtype(), DType::F32);
    EXPECT_LT(rel_error(y32, y64), 1e-6) << shape_str(shape);
    EXPECT_LT(rel_error(sum(x32, dims), sum(x64, dims)), 1e-6) << shape_str(shape);
    Tensor w = random(y64.shape(), DType::F64, 115);
    y32.backward(w.to(DType::F32));
    y64.backward(w);
    EXPECT_LT(rel_error(x32.grad(), x64.grad()), 1e-6) << shape_str(shape);
  }
}

TEST(SumToShape, IsTheAdjointOfBroadcasting) {
  Tensor x = random({2, 3, 4}, DType::F64, 116);
  EXPECT_LT(
      rel_error(sum_to_shape(x, {3, 1}), plain_reduce(x, {0, 2}, true, false).reshape({3, 1})),
      1e-15);
  EXPECT_LT(rel_error(sum_to_shape(x, {4}), plain_reduce(x, {0, 1}, false, false)), 1e-15);
  EXPECT_LT(rel_error(sum_to_shape(x, {2, 1, 4}), plain_reduce(x, {1}, true, false)), 1e-15);
  EXPECT_LT(rel_error(sum_to_shape(x, {}), plain_reduce(x, {0, 1, 2}, false, false)), 1e-15);
  EXPECT_EQ(sum_to_shape(x, {2, 3, 4}).storage(), x.storage());  // nothing to sum
  // the bias-gradient shape, large enough for the chunked parallel column sums
  Tensor big = random({4096, 96}, DType::F64, 117);
  EXPECT_LT(rel_error(sum_to_shape(big, {96}), plain_reduce(big, {0}, false, false)), 1e-13);
  Tensor xg = random({2, 3, 4}, DType::F64, 118, true);
  auto r = gradcheck(
      [](const std::vector<Tensor>& in) {
        return sum_to_shape(in[0], {3, 1});
      },
      {xg});
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_SSM_ERROR(sum_to_shape(x, {3, 2}), "sum_to_shape", "(2, 3, 4)", "(3, 2)");
  EXPECT_SSM_ERROR(sum_to_shape(x, {1, 2, 3, 4}), "sum_to_shape", "(1, 2, 3, 4)");
}

TEST(Reduce, ChunkedColumnAndRowSumsMatchPlainLoop) {
  // Few (a, column block) tasks and a long K: the sums are cut into chunks along K.
  expect_matches(random({2, 30000, 3}, DType::F64, 119), {1}, 1e-12);
  expect_matches(random({3, 70000}, DType::F64, 120), {1}, 1e-12);
  expect_matches(random({20000, 300}, DType::F64, 121), {0}, 1e-12);
  expect_matches(random({5, 3}, DType::F64, 122), {0}, 1e-14);
}
