// matmul and linear against plain float64 loops, finite differences and PyTorch autograd.
#include "ssm/autograd/gradcheck.h"
#include "ssm/ops/linear.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using ssm::testing::random;
using ssm::testing::rel_error;

namespace {

// out[n, i, j] = Σ_k a[n, i, k] · b[n, k, j] over the broadcast batch, as plainly as possible:
// both operands are first copied out in full (broadcast included) as flat double arrays.
Tensor naive_matmul(const Tensor& a, const Tensor& b, const Shape& batch) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  Shape sa = batch, sb = batch, so = batch;
  sa.insert(sa.end(), {M, K});
  sb.insert(sb.end(), {K, N});
  so.insert(so.end(), {M, N});
  const std::vector<double> A = a.detach().expand(sa).to_vector();
  const std::vector<double> B = b.detach().expand(sb).to_vector();
  const int64_t count = shape_numel(batch);
  std::vector<double> C(count * M * N, 0.0);
  for (int64_t n = 0; n < count; ++n)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += A[(n * M + i) * K + k] * B[(n * K + k) * N + j];
        C[(n * M + i) * N + j] = s;
      }
  return Tensor::from_vector(C, so, DType::F64);
}

// y[r, o] = Σ_i x[r, i] · W[o, i] + b[o] with the leading dims of x flattened into r.
Tensor naive_linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t in = w.size(1), out = w.size(0), R = x.numel() / in;
  const std::vector<double> X = x.to_vector(), W = w.to_vector();
  const std::vector<double> Bv = b.defined() ? b.to_vector() : std::vector<double>(out, 0.0);
  std::vector<double> Y(R * out);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = Bv[o];
      for (int64_t i = 0; i < in; ++i) s += X[r * in + i] * W[o * in + i];
      Y[r * out + o] = s;
    }
  Shape shape = x.shape();
  shape.back() = out;
  return Tensor::from_vector(Y, shape, DType::F64);
}

void expect_gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                      const std::vector<Tensor>& inputs) {
  const GradcheckResult r = gradcheck(fn, inputs);
  EXPECT_TRUE(r.ok) << r.report;
}

}  // namespace

// ------------------------------------------------------------------------------- matmul

TEST(Matmul, TwoDimMatchesNaive) {
  Tensor a = random({5, 7}, DType::F64, 1), b = random({7, 3}, DType::F64, 2);
  EXPECT_LT(rel_error(matmul(a, b), naive_matmul(a, b, {})), 1e-13);
}

TEST(Matmul, TransposedAndStridedViewsMatchNaive) {
  // Transposed views reach BLAS as a transpose flag; a view with no unit stride is copied.
  Tensor at = random({7, 5}, DType::F64, 3).transpose(0, 1);       // (5, 7), strides (1, 5)
  Tensor bt = random({3, 7}, DType::F64, 4).transpose(0, 1);       // (7, 3), strides (1, 7)
  Tensor strided = random({5, 7, 2}, DType::F64, 5).select(2, 1);  // strides (14, 2)
  Tensor b = random({7, 3}, DType::F64, 6);
  EXPECT_LT(rel_error(matmul(at, bt), naive_matmul(at, bt, {})), 1e-13);
  EXPECT_LT(rel_error(matmul(at, b), naive_matmul(at, b, {})), 1e-13);
  EXPECT_LT(rel_error(matmul(strided, bt), naive_matmul(strided, bt, {})), 1e-13);
  // A batched transposed view: (2, 4, 3) seen as (2, 3, 4).
  Tensor bat = random({2, 4, 3}, DType::F64, 7).transpose(1, 2);
  Tensor rhs = random({2, 4, 6}, DType::F64, 8);
  EXPECT_LT(rel_error(matmul(bat, rhs), naive_matmul(bat, rhs, {2})), 1e-13);
}

TEST(Matmul, BatchDimsBroadcast) {
  Tensor a = random({2, 1, 3, 4}, DType::F64, 9), b = random({3, 4, 5}, DType::F64, 10);
  Tensor c = matmul(a, b);
  EXPECT_EQ(shape_str(c.shape()), "(2, 3, 3, 5)");
  EXPECT_LT(rel_error(c, naive_matmul(a, b, {2, 3})), 1e-13);
  // An unbatched a against a batched b.
  Tensor w = random({4, 3}, DType::F64, 11), xs = random({2, 3, 5}, DType::F64, 12);
  EXPECT_LT(rel_error(matmul(w, xs), naive_matmul(w, xs, {2})), 1e-13);
}

TEST(Matmul, SharedRightOperandFoldsBatchIntoOneGemm) {
  Tensor a = random({2, 3, 4, 5}, DType::F64, 13), b = random({5, 6}, DType::F64, 14);
  EXPECT_LT(rel_error(matmul(a, b), naive_matmul(a, b, {2, 3})), 1e-13);
  Tensor b1 = random({1, 5, 6}, DType::F64, 15);  // all-1 batch dims fold too
  EXPECT_LT(rel_error(matmul(a, b1), naive_matmul(a, b1, {2, 3})), 1e-13);
}

TEST(Matmul, EmptyInnerDimensionGivesZeros) {
  Tensor c = matmul(Tensor::empty({2, 0}, DType::F64), Tensor::empty({0, 3}, DType::F64));
  EXPECT_EQ(shape_str(c.shape()), "(2, 3)");
  for (double v : c.to_vector()) EXPECT_EQ(v, 0.0);
}

TEST(Matmul, GradientsMatchFiniteDifferences) {
  auto f = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  expect_gradcheck(f, {random({4, 3}, DType::F64, 16, true), random({3, 5}, DType::F64, 17, true)});
  // broadcast batch: a's gradient sums over the batch entries it was shared by
  expect_gradcheck(
      f, {random({2, 1, 3, 4}, DType::F64, 18, true), random({3, 4, 2}, DType::F64, 19, true)});
  // folded batch (b shared)
  expect_gradcheck(f,
                   {random({2, 3, 4}, DType::F64, 20, true), random({4, 5}, DType::F64, 21, true)});
  // unbatched a against batched b
  expect_gradcheck(f,
                   {random({3, 4}, DType::F64, 22, true), random({2, 4, 2}, DType::F64, 23, true)});
  // transposed views as operands
  auto ft = [](const std::vector<Tensor>& in) {
    return matmul(in[0].transpose(0, 1), in[1].transpose(-1, -2));
  };
  expect_gradcheck(ft,
                   {random({4, 3}, DType::F64, 24, true), random({2, 5, 4}, DType::F64, 25, true)});
}

TEST(Matmul, Float32AgreesWithFloat64) {
  Tensor a = random({3, 16, 32}, DType::F64, 26), b = random({32, 24}, DType::F64, 27);
  Tensor c64 = matmul(a, b);
  Tensor c32 = matmul(a.to(DType::F32), b.to(DType::F32));
  EXPECT_EQ(c32.dtype(), DType::F32);
  EXPECT_LT(rel_error(c32, c64), 1e-5);
}

TEST(Matmul, MatchesTorchAutogradWithBroadcast) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  Tensor a = random({2, 1, 3, 4}, DType::F64, 28, true),
         b = random({3, 4, 5}, DType::F64, 29, true);
  Tensor dc = random({2, 3, 3, 5}, DType::F64, 30);
  Tensor c = matmul(a, b);
  c.backward(dc);
  auto ref = ssm::testing::run_torch("linear_ref.py", {{"a", a}, {"b", b}, {"dy", dc}});
  EXPECT_LT(rel_error(c, ref["y"]), 1e-12);
  EXPECT_LT(rel_error(a.grad(), ref["ga"]), 1e-12);
  EXPECT_LT(rel_error(b.grad(), ref["gb"]), 1e-12);
}

TEST(Matmul, RejectsBadInputs) {
  Tensor a = random({3, 4}, DType::F64, 31);
  EXPECT_SSM_ERROR(matmul(a, random({5, 2}, DType::F64, 32)), "matmul", "'b'", "(3, 4)", "(5, 2)");
  EXPECT_SSM_ERROR(matmul(random({4}, DType::F64, 33), a), "matmul", "'a'", "(4)");
  EXPECT_SSM_ERROR(matmul(random({2, 3, 4}, DType::F64, 34), random({3, 4, 2}, DType::F64, 35)),
                   "matmul", "batch", "(2, 3, 4)", "(3, 4, 2)");
  EXPECT_SSM_ERROR(matmul(a, random({4, 2}, DType::F32, 36)), "matmul", "'b'", "float32");
  EXPECT_SSM_ERROR(matmul(Tensor::zeros({3, 4}, DType::I64), a), "matmul", "'a'", "int64");
}

// ------------------------------------------------------------------------------- linear

TEST(Linear, MatchesNaiveWithAndWithoutBias) {
  Tensor x = random({2, 3, 4}, DType::F64, 40), w = random({5, 4}, DType::F64, 41);
  Tensor b = random({5}, DType::F64, 42);
  Tensor y = linear(x, w, b);
  EXPECT_EQ(shape_str(y.shape()), "(2, 3, 5)");
  EXPECT_LT(rel_error(y, naive_linear(x, w, b)), 1e-13);
  EXPECT_LT(rel_error(linear(x, w), naive_linear(x, w, Tensor())), 1e-13);
  Tensor x1 = random({4}, DType::F64, 43);  // a single vector
  EXPECT_LT(rel_error(linear(x1, w, b), naive_linear(x1, w, b)), 1e-13);
}

TEST(Linear, AcceptsNonContiguousInput) {
  Tensor x = random({4, 2, 3}, DType::F64, 44).permute({1, 2, 0});  // (2, 3, 4), strided
  Tensor xt = random({4, 6}, DType::F64, 45).transpose(0, 1);       // (6, 4), transposed
  Tensor w = random({5, 4}, DType::F64, 46), b = random({5}, DType::F64, 47);
  EXPECT_LT(rel_error(linear(x, w, b), naive_linear(x.contiguous(), w, b)), 1e-13);
  EXPECT_LT(rel_error(linear(xt, w, b), naive_linear(xt.contiguous(), w, b)), 1e-13);
}

TEST(Linear, GradientsMatchFiniteDifferences) {
  auto f = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); };
  expect_gradcheck(f, {random({2, 3, 4}, DType::F64, 48, true),
                       random({5, 4}, DType::F64, 49, true), random({5}, DType::F64, 50, true)});
  auto f_nobias = [](const std::vector<Tensor>& in) { return linear(in[0], in[1]); };
  expect_gradcheck(f_nobias,
                   {random({3, 4}, DType::F64, 51, true), random({2, 4}, DType::F64, 52, true)});
  auto f_t = [](const std::vector<Tensor>& in) {
    return linear(in[0].transpose(0, 1), in[1], in[2]);
  };
  expect_gradcheck(f_t, {random({4, 3}, DType::F64, 53, true), random({2, 4}, DType::F64, 54, true),
                         random({2}, DType::F64, 55, true)});
}

TEST(Linear, OnlyRequestedGradientsAreComputed) {
  Tensor x = random({3, 4}, DType::F64, 56), w = random({2, 4}, DType::F64, 57, true);
  Tensor b = random({2}, DType::F64, 58);
  linear(x, w, b).backward(Tensor::ones({3, 2}, DType::F64));
  EXPECT_TRUE(w.grad().defined());
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  // dW = 1ᵀ · X: every row of dW is the column sums of x.
  for (int64_t i = 0; i < 4; ++i) {
    double s = 0;
    for (int64_t r = 0; r < 3; ++r) s += x.at({r, i});
    EXPECT_NEAR(w.grad().at({1, i}), s, 1e-12);
  }
}

TEST(Linear, Float32AgreesWithFloat64) {
  Tensor x = random({4, 8, 32}, DType::F64, 59), w = random({48, 32}, DType::F64, 60);
  Tensor b = random({48}, DType::F64, 61);
  Tensor x32 = x.to(DType::F32).requires_grad_(), w32 = w.to(DType::F32).requires_grad_();
  Tensor b32 = b.to(DType::F32).requires_grad_();
  x.requires_grad_();
  w.requires_grad_();
  b.requires_grad_();
  Tensor dy = random({4, 8, 48}, DType::F64, 62);
  Tensor y64 = linear(x, w, b), y32 = linear(x32, w32, b32);
  y64.backward(dy);
  y32.backward(dy.to(DType::F32));
  EXPECT_LT(rel_error(y32, y64), 1e-5);
  EXPECT_LT(rel_error(x32.grad(), x.grad()), 1e-5);
  EXPECT_LT(rel_error(w32.grad(), w.grad()), 1e-5);
  EXPECT_LT(rel_error(b32.grad(), b.grad()), 1e-5);
}

TEST(Linear, MatchesTorchAutogradOnBatchedInput) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  Tensor x = random({2, 3, 4}, DType::F64, 63, true), w = random({5, 4}, DType::F64, 64, true);
  Tensor b = random({5}, DType::F64, 65, true), dy = random({2, 3, 5}, DType::F64, 66);
  Tensor y = linear(x, w, b);
  y.backward(dy);
  auto ref = ssm::testing::run_torch("linear_ref.py", {{"x", x}, {"w", w}, {"b", b}, {"dy", dy}});
  EXPECT_LT(rel_error(y, ref["y"]), 1e-12);
  EXPECT_LT(rel_error(x.grad(), ref["gx"]), 1e-12);
  EXPECT_LT(rel_error(w.grad(), ref["gw"]), 1e-12);
  EXPECT_LT(rel_error(b.grad(), ref["gb"]), 1e-12);
}

TEST(Linear, RejectsBadInputs) {
  Tensor x = random({2, 3, 4}, DType::F64, 67);
  EXPECT_SSM_ERROR(linear(x, random({5, 3}, DType::F64, 68)), "linear", "'weight'", "(out, 4)",
                   "(5, 3)");
  EXPECT_SSM_ERROR(linear(x, random({5, 4}, DType::F64, 69), random({4}, DType::F64, 70)), "linear",
                   "'bias'", "(5)", "(4)");
  EXPECT_SSM_ERROR(linear(x, random({5, 4}, DType::F32, 71)), "linear", "'weight'", "float64",
                   "float32");
  EXPECT_SSM_ERROR(linear(Tensor::scalar(1.0, DType::F64), random({5, 1}, DType::F64, 72)),
                   "linear", "'x'", "(…, in)");
}

TEST(Linear, EmptyDimensionsGiveEmptyOrBiasOutputs) {
  Tensor x = Tensor::empty({2, 3, 0}, DType::F64).requires_grad_();
  Tensor w = Tensor::empty({4, 0}, DType::F64).requires_grad_();
  Tensor b = random({4}, DType::F64, 73, true);
  Tensor y = linear(x, w, b);  // an empty sum: every row is the bias
  EXPECT_EQ(shape_str(y.shape()), "(2, 3, 4)");
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(y.at({1, 2, i}), b.at({i}));
  y.backward(Tensor::ones({2, 3, 4}, DType::F64));
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(b.grad().at({i}), 6.0);
  Tensor none = linear(Tensor::empty({0, 5}, DType::F64), random({3, 5}, DType::F64, 74));
  EXPECT_EQ(shape_str(none.shape()), "(0, 3)");
}
