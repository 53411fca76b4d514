// concat, split and glu: forward against plain index loops, gradients by finite differences
// (and PyTorch for glu), bad inputs, float32 agreement.
#include <cmath>

#include "ssm/autograd/gradcheck.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/shape_ops.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using ssm::testing::random;
using ssm::testing::rel_error;

namespace {

// Multi-index of the row-major position `flat` in `shape`.
std::vector<int64_t> unravel(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return idx;
}

// Each output element is found by walking the inputs until the one that holds its position
// along `dim`.
Tensor plain_concat(const std::vector<Tensor>& xs, int64_t dim) {
  const int64_t nd = xs[0].dim();
  if (dim < 0) dim += nd;
  Shape out = xs[0].shape();
  out[dim] = 0;
  for (const Tensor& x : xs) out[dim] += x.shape()[dim];
  std::vector<double> v(shape_numel(out));
  for (int64_t flat = 0; flat < shape_numel(out); ++flat) {
    std::vector<int64_t> idx = unravel(flat, out);
    size_t k = 0;
    while (idx[dim] >= xs[k].shape()[dim]) idx[dim] -= xs[k++].shape()[dim];
    v[flat] = xs[k].at(idx);
  }
  return Tensor::from_vector(v, out, DType::F64);
}

// out[…, j, …] = x[…, j, …] · σ(x[…, j + H, …]) along `dim` of size 2H.
Tensor plain_glu(const Tensor& x, int64_t dim) {
  if (dim < 0) dim += x.dim();
  Shape out = x.shape();
  const int64_t half = out[dim] / 2;
  out[dim] = half;
  std::vector<double> v(shape_numel(out));
  for (int64_t flat = 0; flat < shape_numel(out); ++flat) {
    std::vector<int64_t> ia = unravel(flat, out), ib = ia;
    ib[dim] += half;
    v[flat] = x.at(ia) / (1.0 + std::exp(-x.at(ib)));
  }
  return Tensor::from_vector(v, out, DType::F64);
}

}  // namespace

// ---------------------------------------------------------------- concat

TEST(Concat, MatchesPlainLoopAlongEveryDim) {
  for (int64_t dim : {0, 1, 2, -1, -2}) {
    Shape s0 = {2, 3, 4}, s1 = s0, s2 = s0;
    const int64_t d = dim < 0 ? dim + 3 : dim;
    s1[d] = 1;
    s2[d] = 5;
    std::vector<Tensor> xs = {random(s0, DType::F64, 201), random(s1, DType::F64, 202),
                              random(s2, DType::F64, 203)};
    Tensor y = concat(xs, dim);
    EXPECT_LT(rel_error(y, plain_concat(xs, dim)), 1e-16) << "dim " << dim;
    EXPECT_EQ(y.size(d), s0[d] + 1 + 5);
  }
}

TEST(Concat, StridedEmptyAndLargeInputs) {
  Tensor a = random({5, 4}, DType::F64, 204).transpose(0, 1);  // (4, 5) strided
  Tensor b = random({4, 0}, DType::F64);                       // contributes nothing
  Tensor c = random({4, 2}, DType::F64, 205);
  EXPECT_LT(rel_error(concat({a, b, c}, 1), plain_concat({a, b, c}, 1)), 1e-16);
  Tensor big0 = random({100, 300}, DType::F64, 206), big1 = random({100, 200}, DType::F64, 207);
  EXPECT_LT(rel_error(concat({big0, big1}, 1), plain_concat({big0, big1}, 1)), 1e-16);
  EXPECT_LT(rel_error(concat({big0, big0}, 0), plain_concat({big0, big0}, 0)), 1e-16);
  // a single tensor comes back as a copy
  EXPECT_LT(rel_error(concat({c}, 0), c), 1e-16);
}

TEST(Concat, WorksForIntegerTensors) {
  Tensor a = Tensor::arange(6, DType::I64).reshape({2, 3});
  Tensor b = Tensor::arange(2, DType::I64).reshape({2, 1});
  Tensor y = concat({a, b}, 1);
  EXPECT_EQ(y.dtype(), DType::I64);
  EXPECT_EQ(y.to_vector(), (std::vector<double>{0, 1, 2, 0, 3, 4, 5, 1}));
}

TEST(Concat, Gradcheck) {
  for (int64_t dim : {0, 1, -1}) {
    Shape s0 = {2, 3, 2}, s1 = s0;
    s1[dim < 0 ? 2 : dim] = 3;
    Tensor a = random(s0, DType::F64, 208, true), b = random(s1, DType::F64, 209, true);
    Tensor c = random(s0, DType::F64, 210, true);
    auto r = gradcheck([&](const std::vector<Tensor>& in) { return concat(in, dim); }, {a, b, c});
    EXPECT_TRUE(r.ok) << "dim " << dim << "\n" << r.report;
  }
  // an input that does not require grad gets none; a reused input gets both shares
  Tensor a = random({2, 2}, DType::F64, 211, true), k = random({2, 2}, DType::F64, 212);
  concat({a, k, a}, 0).backward(Tensor::ones({6, 2}, DType::F64));
  EXPECT_EQ(a.grad().to_vector(), std::vector<double>(4, 2.0));
  EXPECT_FALSE(k.grad().defined());
}

TEST(ConcatErrors, BadInputs) {
  EXPECT_SSM_ERROR(concat({}, 0), "concat", "'xs'", "empty");
  Tensor a = random({2, 3});
  EXPECT_SSM_ERROR(concat({a, random({2, 4, 1})}, 1), "concat", "tensor 1", "(2, 4, 1)", "(2, 3)");
  EXPECT_SSM_ERROR(concat({a, random({3, 3})}, 1), "concat", "tensor 1", "(3, 3)", "(2, 3)",
                   "dimension 1");
  EXPECT_SSM_ERROR(concat({random({2, 3}, DType::F32), a}, 0), "concat", "tensor 1", "float64",
                   "float32");
  EXPECT_SSM_ERROR(concat({a, a}, 2), "concat", "dimension 2", "2-d");
}

// ---------------------------------------------------------------- split

TEST(Split, ReturnsNarrowViews) {
  Tensor x = random({3, 7, 2}, DType::F64, 213);
  std::vector<Tensor> parts = split(x, {2, 0, 4, 1}, -2);
  ASSERT_EQ(parts.size(), 4u);
  int64_t start = 0;
  for (int64_t i = 0; i < 4; ++i) {
    const int64_t len = parts[i].size(1);
    EXPECT_EQ(parts[i].storage(), x.storage()) << "part " << i << " is not a view";
    EXPECT_LT(rel_error(parts[i], x.narrow(1, start, len).contiguous()), 1e-16);
    start += len;
  }
  EXPECT_EQ(parts[2].shape(), (Shape{3, 4, 2}));
  EXPECT_LT(rel_error(concat(parts, 1), x), 1e-16);  // split then concat is the identity
}

TEST(Split, Gradcheck) {
  Tensor x = random({2, 6, 3}, DType::F64, 214, true);
  auto r = gradcheck(
      [](const std::vector<Tensor>& in) {
        std::vector<Tensor> p = split(in[0], {2, 3, 1}, 1);
        return concat({mul_scalar(p[2], 3.0), p[0]}, 1);  // p[1] unused: its gradient is 0
      },
      {x});
  EXPECT_TRUE(r.ok) << r.report;
}

TEST(SplitErrors, SizesMustAddUp) {
  Tensor x = random({2, 5});
  EXPECT_SSM_ERROR(split(x, {2, 2}, 1), "split", "'sizes'", "(2, 2)", "adds up to 4", "5");
  EXPECT_SSM_ERROR(split(x, {6, -1}, 1), "split", "'sizes'", "negative");
  EXPECT_SSM_ERROR(split(x, {5}, 3), "split", "dimension 3");
}

// ---------------------------------------------------------------- glu

TEST(Glu, MatchesPlainLoop) {
  for (int64_t dim : {0, 1, 2, -1}) {
    Shape s = {4, 6, 2};
    Tensor x = random(s, DType::F64, 215);
    Tensor y = glu(x, dim);
    EXPECT_LT(rel_error(y, plain_glu(x, dim)), 1e-15) << "dim " << dim;
  }
  Tensor strided = random({6, 5}, DType::F64, 216).transpose(0, 1);  // (5, 6)
  EXPECT_LT(rel_error(glu(strided), plain_glu(strided, -1)), 1e-15);
  Tensor big = random({64, 1024}, DType::F64, 217);  // parallel path
  EXPECT_LT(rel_error(glu(big), plain_glu(big, -1)), 1e-15);
}

TEST(Glu, Gradcheck) {
  for (int64_t dim : {0, 1, -1}) {
    Tensor x = random({2, 4, 6}, DType::F64, 218, true);
    auto r = gradcheck([&](const std::vector<Tensor>& in) { return glu(in[0], dim); }, {x});
    EXPECT_TRUE(r.ok) << "dim " << dim << "\n" << r.report;
  }
}

TEST(GluErrors, OddSizeAndBadDim) {
  EXPECT_SSM_ERROR(glu(random({2, 5})), "glu", "argument 'x'", "(2, 5)", "even", "dimension 1");
  EXPECT_SSM_ERROR(glu(random({2, 4}), 2), "glu", "dimension 2");
  EXPECT_SSM_ERROR(glu(Tensor::arange(4, DType::I64)), "glu", "int64");
}

TEST(GluFloat32, AgreesWithFloat64) {
  Tensor x32 = random({64, 1024}, DType::F32, 219).requires_grad_();
  Tensor x64 = x32.detach().to(DType::F64).requires_grad_();
  Tensor y32 = glu(x32, 0), y64 = glu(x64, 0);
  EXPECT_LT(rel_error(y32, y64), 1e-6);
  Tensor w = random(y64.shape(), DType::F64, 220);
  y32.backward(w.to(DType::F32));
  y64.backward(w);
  EXPECT_LT(rel_error(x32.grad(), x64.grad()), 1e-6);
}

TEST(GluTorch, MatchesPyTorch) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  Tensor x = random({3, 8, 5}, DType::F64, 221);
  Tensor w = random({3, 4, 5}, DType::F64, 222);
  auto ref = ssm::testing::run_torch("elementwise_ref.py", {{"glu_x", x}, {"glu_w", w}});
  Tensor xi = x.detach().clone().requires_grad_();
  Tensor y = glu(xi, 1);
  y.backward(w);
  EXPECT_LT(rel_error(y, ref["glu"]), 1e-14);
  EXPECT_LT(rel_error(xi.grad(), ref["glu_grad"]), 1e-14);
}
