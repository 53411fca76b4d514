// Elementwise ops: forward against plain float64 formulas (broadcasting done by hand),
// gradients by finite differences and by PyTorch, bad inputs, float32 agreement.
#include <cmath>
#include <functional>
#include <utility>

#include "ssm/autograd/gradcheck.h"
#include "ssm/ops/elementwise.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using ssm::testing::random;
using ssm::testing::rel_error;

namespace {

constexpr double kPi = 3.14159265358979323846;

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> plain;
  bool positive_only;  // log and sqrt need x > 0
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double v) { return -v; }, false},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); }, false},
      {"log", [](const Tensor& x) { return log(x); }, [](double v) { return std::log(v); }, true},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double v) { return std::sqrt(v); },
       true},
      {"square", [](const Tensor& x) { return square(x); }, [](double v) { return v * v; }, false},
      {"softplus", [](const Tensor& x) { return softplus(x); },
       [](double v) { return std::log(1.0 + std::exp(v)); }, false},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); },
       [](double v) { return 1.0 / (1.0 + std::exp(-v)); }, false},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double v) { return std::tanh(v); },
       false},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double v) { return v > 0 ? v : 0.0; },
       false},
      {"silu", [](const Tensor& x) { return silu(x); },
       [](double v) { return v / (1.0 + std::exp(-v)); }, false},
      {"gelu_erf", [](const Tensor& x) { return gelu(x, GeluApprox::Erf); },
       [](double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }, false},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, GeluApprox::Tanh); },
       [](double v) {
         return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / kPi) * (v + 0.044715 * v * v * v)));
       },
       false},
      {"add_scalar", [](const Tensor& x) { return add_scalar(x, 2.5); },
       [](double v) { return v + 2.5; }, false},
      {"mul_scalar", [](const Tensor& x) { return mul_scalar(x, -1.75); },
       [](double v) { return v * -1.75; }, false},
  };
}

// Random inputs spread over ±~9 (strictly positive, ≥ 0.2, for log / sqrt).
Tensor unary_input(const UnaryCase& c, const Shape& shape, DType dtype, uint64_t seed) {
  std::vector<double> v = random(shape, DType::F64, seed).to_vector();
  for (double& e : v) e = c.positive_only ? 0.2 + 2.0 * std::abs(e) : 3.0 * e;
  return Tensor::from_vector(v, shape, dtype);
}

Tensor plain_map(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> v = x.to_vector();
  for (double& e : v) e = f(e);
  return Tensor::from_vector(v, x.shape(), DType::F64);
}

// a ∘ b with NumPy broadcasting, written out index by index.
Tensor plain_broadcast(const Tensor& a, const Tensor& b,
                       const std::function<double(double, double)>& f) {
  const size_t nd = std::max(a.dim(), b.dim());
  Shape pa(nd, 1), pb(nd, 1), out(nd);
  for (size_t i = 0; i < static_cast<size_t>(a.dim()); ++i) pa[nd - a.dim() + i] = a.shape()[i];
  for (size_t i = 0; i < static_cast<size_t>(b.dim()); ++i) pb[nd - b.dim() + i] = b.shape()[i];
  for (size_t d = 0; d < nd; ++d) out[d] = std::max(pa[d], pb[d]);
  const std::vector<double> va = a.to_vector(), vb = b.to_vector();
  std::vector<double> vo(shape_numel(out));
  for (int64_t flat = 0; flat < shape_numel(out); ++flat) {
    int64_t rest = flat, ia = 0, ib = 0, sa = 1, sb = 1;
    for (size_t d = nd; d-- > 0;) {
      const int64_t idx = rest % out[d];
      rest /= out[d];
      ia += (pa[d] == 1 ? 0 : idx) * sa;
      ib += (pb[d] == 1 ? 0 : idx) * sb;
      sa *= pa[d];
      sb *= pb[d];
    }
    vo[flat] = f(va[ia], vb[ib]);
  }
  return Tensor::from_vector(vo, out, DType::F64);
}

struct BinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  std::function<double(double, double)> plain;
};

std::vector<BinaryCase> binary_cases() {
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); },
       [](double x, double y) { return x + y; }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); },
       [](double x, double y) { return x - y; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); },
       [](double x, double y) { return x * y; }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); },
       [](double x, double y) { return x / y; }},
  };
}

// Random values with |v| ≥ 0.5, so they are safe denominators.
Tensor away_from_zero(const Shape& shape, DType dtype, uint64_t seed) {
  std::vector<double> v = random(shape, DType::F64, seed).to_vector();
  for (double& e : v) e = (e >= 0 ? 1.0 : -1.0) * (0.5 + std::abs(e));
  return Tensor::from_vector(v, shape, dtype);
}

const std::vector<std::pair<Shape, Shape>> kBroadcastPairs = {
    {{2, 3, 4}, {2, 3, 4}},
    {{2, 3, 4}, {3, 1}},
    {{2, 3, 4}, {4}},
    {{4}, {2, 3, 4}},
    {{2, 3, 4}, {}},
    {{}, {2, 3, 4}},
    {{4, 1}, {1, 3}},
    {{2, 1, 4}, {3, 1}},
    {{1}, {5}},
    {{2, 1, 3, 1}, {1, 4, 1, 5}},
    {{3, 1}, {2, 3, 4}},
    {{2, 3, 1}, {2, 3, 4}},
};

}  // namespace

// ---------------------------------------------------------------- unary forward

TEST(ElementwiseUnary, MatchesPlainFormulas) {
  for (const UnaryCase& c : unary_cases()) {
    Tensor x = unary_input(c, {3, 5, 7}, DType::F64, 21);
    EXPECT_LT(rel_error(c.op(x), plain_map(x, c.plain)), 1e-13) << c.name;
  }
}

TEST(ElementwiseUnary, ReadsStridedViews) {
  for (const UnaryCase& c : unary_cases()) {
    Tensor base = unary_input(c, {4, 5, 6}, DType::F64, 22);
    Tensor view = base.permute({2, 0, 1}).narrow(1, 1, 3);  // non-contiguous, offset
    ASSERT_FALSE(view.is_contiguous());
    Tensor y = c.op(view);
    EXPECT_TRUE(y.is_contiguous());
    EXPECT_LT(rel_error(y, plain_map(view, c.plain)), 1e-13) << c.name;
  }
}

TEST(ElementwiseUnary, LargeTensorsTakeTheParallelPath) {
  for (const UnaryCase& c : unary_cases()) {
    Tensor x = unary_input(c, {200, 300}, DType::F64, 23);  // 60k elements > 32k
    EXPECT_LT(rel_error(c.op(x), plain_map(x, c.plain)), 1e-13) << c.name;
  }
}

TEST(ElementwiseUnary, SoftplusAndSigmoidStayFiniteAtExtremes) {
  const std::vector<double> v = {-800, -50, -1, 0, 1, 19.5, 20.5, 50, 800};
  // log(1 + e^x) = max(x, 0) + log1p(e^−|x|) has no overflow anywhere.
  auto stable = [](double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x))); };
  for (DType dt : {DType::F64, DType::F32}) {
    Tensor x = Tensor::from_vector(v, {static_cast<int64_t>(v.size())}, dt).requires_grad_();
    Tensor y = softplus(x);
    y.backward(Tensor::ones(y.shape(), dt));
    for (size_t i = 0; i < v.size(); ++i) {
      const double want = stable(v[i]);
      // Above the threshold 20 the result is x itself: off by e^−x/x < 1e-9 relative.
      EXPECT_NEAR(y.at({int64_t(i)}), want,
                  std::abs(want) * (dt == DType::F64 ? 1e-9 : 1e-6) + 1e-300)
          << "softplus(" << v[i] << ")";
      const double dwant = 1.0 / (1.0 + std::exp(-v[i]));
      EXPECT_NEAR(x.grad().at({int64_t(i)}), dwant, 1e-7) << "softplus'(" << v[i] << ")";
    }
    Tensor s = sigmoid(x);
    for (size_t i = 0; i < v.size(); ++i) {
      EXPECT_TRUE(std::isfinite(s.at({int64_t(i)})));
      EXPECT_NEAR(s.at({int64_t(i)}), 1.0 / (1.0 + std::exp(-v[i])), 1e-7);
    }
  }
  // far below: softplus(−50) ≈ e^−50 to full relative precision
  Tensor tiny = softplus(Tensor::from_vector({-50}, {1}, DType::F64));
  EXPECT_NEAR(tiny.item() / std::exp(-50.0), 1.0, 1e-12);
}

TEST(ElementwiseUnary, ReluGradientIsZeroAtZero) {
  Tensor x = Tensor::from_vector({-1.0, 0.0, 2.0}, {3}, DType::F64).requires_grad_();
  relu(x).backward(Tensor::ones({3}, DType::F64));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0.0, 0.0, 1.0}));
}

// ---------------------------------------------------------------- unary gradients

TEST(ElementwiseUnary, GradcheckEveryOp) {
  for (const UnaryCase& c : unary_cases()) {
    Tensor x = unary_input(c, {2, 3, 4}, DType::F64, 24).requires_grad_();
    auto r = gradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0]); }, {x});
    EXPECT_TRUE(r.ok) << c.name << "\n" << r.report;
  }
}

TEST(ElementwiseUnary, GradcheckThroughStridedView) {
  Tensor x = random({4, 3}, DType::F64, 25, true);
  auto r = gradcheck(
      [](const std::vector<Tensor>& in) { return gelu(in[0].transpose(0, 1), GeluApprox::Tanh); },
      {x});
  EXPECT_TRUE(r.ok) << r.report;
}

// ---------------------------------------------------------------- binary forward

TEST(ElementwiseBinary, BroadcastingMatchesPlainReference) {
  for (const BinaryCase& c : binary_cases()) {
    for (const auto& [sa, sb] : kBroadcastPairs) {
      Tensor a = random(sa, DType::F64, 31);
      Tensor b = away_from_zero(sb, DType::F64, 32);
      Tensor y = c.op(a, b);
      EXPECT_EQ(y.shape(), broadcast_shapes(sa, sb, c.name));
      EXPECT_LT(rel_error(y, plain_broadcast(a, b, c.plain)), 1e-14)
          << c.name << " " << shape_str(sa) << " " << shape_str(sb);
    }
  }
}

TEST(ElementwiseBinary, BroadcastShapes) {
  EXPECT_EQ(broadcast_shapes({2, 3, 4}, {3, 1}, "t"), (Shape{2, 3, 4}));
  EXPECT_EQ(broadcast_shapes({}, {5}, "t"), (Shape{5}));
  EXPECT_EQ(broadcast_shapes({4, 1}, {1, 3}, "t"), (Shape{4, 3}));
  EXPECT_EQ(broadcast_shapes({1}, {0}, "t"), (Shape{0}));
  EXPECT_EQ(add(random({0, 3}), random({3})).shape(), (Shape{0, 3}));
}

TEST(ElementwiseBinary, ReadsStridedViews) {
  Tensor a = random({4, 3, 5}, DType::F64, 33).permute({1, 2, 0});                    // (3, 5, 4)
  Tensor b = away_from_zero({6, 5}, DType::F64, 34).narrow(0, 2, 4).transpose(0, 1);  // (5, 4)
  ASSERT_FALSE(a.is_contiguous());
  ASSERT_FALSE(b.is_contiguous());
  for (const BinaryCase& c : binary_cases())
    EXPECT_LT(rel_error(c.op(a, b), plain_broadcast(a, b, c.plain)), 1e-14) << c.name;
}

TEST(ElementwiseBinary, LargeTensorsTakeTheParallelPath) {
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {{300, 200}, {300, 200}},  // same shape: one long row split in tiles
      {{64, 1000}, {1000}},      // bias over the last dim
      {{64, 1000}, {64, 1}},     // per-row scalar
      {{100000}, {}},            // scalar
      {{1000, 1}, {1, 64}},      // outer product
      {{40, 30, 50}, {40, 1, 50}},
  };
  for (const BinaryCase& c : binary_cases()) {
    for (const auto& [sa, sb] : pairs) {
      Tensor a = random(sa, DType::F64, 35);
      Tensor b = away_from_zero(sb, DType::F64, 36);
      EXPECT_LT(rel_error(c.op(a, b), plain_broadcast(a, b, c.plain)), 1e-14)
          << c.name << " " << shape_str(sa) << " " << shape_str(sb);
    }
  }
}

TEST(ElementwiseBinary, OperatorsCallTheOps) {
  Tensor a = random({3, 4}, DType::F64, 37);
  Tensor b = away_from_zero({4}, DType::F64, 38);
  EXPECT_LT(rel_error(a + b, add(a, b)), 1e-15);
  EXPECT_LT(rel_error(a - b, sub(a, b)), 1e-15);
  EXPECT_LT(rel_error(a * b, mul(a, b)), 1e-15);
  EXPECT_LT(rel_error(a / b, div(a, b)), 1e-15);
  EXPECT_LT(rel_error(2.0 - a, plain_map(a, [](double v) { return 2.0 - v; })), 1e-15);
  EXPECT_LT(rel_error(a / 4.0, plain_map(a, [](double v) { return v / 4.0; })), 1e-15);
  EXPECT_LT(rel_error(-a + 1.5, plain_map(a, [](double v) { return 1.5 - v; })), 1e-15);
  EXPECT_LT(rel_error(3.0 * a - 1.0, plain_map(a, [](double v) { return 3 * v - 1; })), 1e-15);
}

// ---------------------------------------------------------------- binary gradients

TEST(ElementwiseBinary, GradcheckBroadcastingBothInputs) {
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {{2, 3, 4}, {3, 1}}, {{2, 3, 4}, {4}}, {{3, 1}, {2, 3, 4}}, {{2, 3, 4}, {}},
      {{4, 1}, {1, 3}},    {{2, 3}, {2, 3}}, {{2, 1, 4}, {3, 1}},
  };
  for (const BinaryCase& c : binary_cases()) {
    for (const auto& [sa, sb] : pairs) {
      Tensor a = random(sa, DType::F64, 41, true);
      Tensor b = away_from_zero(sb, DType::F64, 42).requires_grad_();
      auto r = gradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); }, {a, b});
      EXPECT_TRUE(r.ok) << c.name << " " << shape_str(sa) << " " << shape_str(sb) << "\n"
                        << r.report;
    }
  }
}

TEST(ElementwiseBinary, OnlyTheInputsThatRequireGradReceiveOne) {
  for (const BinaryCase& c : binary_cases()) {
    Tensor a = random({2, 3}, DType::F64, 43, true);
    Tensor b = away_from_zero({3}, DType::F64, 44);  // a constant
    auto r = gradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); }, {a, b});
    EXPECT_TRUE(r.ok) << c.name << "\n" << r.report;
    EXPECT_FALSE(b.grad().defined()) << c.name;
  }
}

TEST(ElementwiseBinary, SameTensorAsBothOperands) {
  Tensor x = random({5}, DType::F64, 45, true);
  mul(x, x).backward(Tensor::ones({5}, DType::F64));
  EXPECT_LT(rel_error(x.grad(), plain_map(x, [](double v) { return 2 * v; })), 1e-15);
  x.zero_grad();
  Tensor d = sub(x, x);
  EXPECT_EQ(d.to_vector(), std::vector<double>(5, 0.0));
  d.backward(Tensor::ones({5}, DType::F64));
  EXPECT_EQ(x.grad().to_vector(), std::vector<double>(5, 0.0));
}

TEST(ElementwiseBinary, ComposedChainGradcheck) {
  // silu(a·b)/c + gelu_tanh(a − c)·softplus(b) − exp(−a²)·sqrt(c²) — broadcasting throughout
  Tensor a = random({2, 3, 4}, DType::F64, 46, true);
  Tensor b = random({3, 1}, DType::F64, 47, true);
  Tensor c = away_from_zero({4}, DType::F64, 48).requires_grad_();
  auto r = gradcheck(
      [](const std::vector<Tensor>& in) {
        const Tensor &a = in[0], &b = in[1], &c = in[2];
        return silu(a * b) / c + gelu(a - c, GeluApprox::Tanh) * softplus(b) -
               exp(-square(a)) * sqrt(square(c));
      },
      {a, b, c});
  EXPECT_TRUE(r.ok) << r.report;
}

// ---------------------------------------------------------------- bad inputs

TEST(ElementwiseErrors, IncompatibleBroadcastNamesOpAndBothShapes) {
  Tensor a = random({2, 3}), b = random({4});
  EXPECT_SSM_ERROR(add(a, b), "add", "(2, 3)", "(4)", "argument 'a'", "argument 'b'");
  EXPECT_SSM_ERROR(mul(random({2, 3, 4}), random({3, 2})), "mul", "(2, 3, 4)", "(3, 2)",
                   "sizes 4 and 2");
  EXPECT_SSM_ERROR(div(random({5}), random({2, 3})), "div", "(5)", "(2, 3)");
  EXPECT_SSM_ERROR(broadcast_shapes({3}, {4}, "my_op"), "my_op", "(3)", "(4)");
}

TEST(ElementwiseErrors, DtypeMismatchAndNonFloat) {
  Tensor a32 = random({3}, DType::F32), b64 = random({3}, DType::F64);
  EXPECT_SSM_ERROR(sub(a32, b64), "sub", "float32", "float64", "same dtype");
  EXPECT_SSM_ERROR(mul(Tensor::arange(3, DType::I64), Tensor::arange(3, DType::I64)), "mul",
                   "argument 'a'", "int64");
  EXPECT_SSM_ERROR(exp(Tensor::arange(3, DType::I32)), "exp", "argument 'x'", "int32");
  EXPECT_SSM_ERROR(gelu(Tensor::arange(3, DType::I64)), "gelu", "int64");
  EXPECT_SSM_ERROR(add(random({3}), Tensor()), "add", "argument 'b'", "undefined");
}

// Every unary op names itself, its argument and the dtype it was given, for integer and
// undefined inputs alike (its only possible bad inputs: it takes any shape).
TEST(ElementwiseErrors, EveryUnaryOpRejectsIntegerAndUndefinedInputs) {
  const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> ops = {
      {"exp", [](const Tensor& x) { return exp(x); }},
      {"log", [](const Tensor& x) { return log(x); }},
      {"softplus", [](const Tensor& x) { return softplus(x); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"silu", [](const Tensor& x) { return silu(x); }},
      {"gelu", [](const Tensor& x) { return gelu(x, GeluApprox::Erf); }},
      {"gelu", [](const Tensor& x) { return gelu(x, GeluApprox::Tanh); }}};
  for (const auto& [name, op] : ops) {
    EXPECT_SSM_ERROR(op(Tensor::arange(3, DType::I64)), name, "argument 'x'", "int64");
    EXPECT_SSM_ERROR(op(Tensor()), name, "argument 'x'", "undefined");
  }
}

// ---------------------------------------------------------------- float32

TEST(ElementwiseFloat32, UnaryAgreesWithFloat64) {
  for (const UnaryCase& c : unary_cases()) {
    for (const Shape& shape : {Shape{7, 9}, Shape{250, 200}}) {  // serial and parallel
      Tensor x32 = unary_input(c, shape, DType::F32, 51).requires_grad_();
      Tensor x64 = x32.detach().to(DType::F64).requires_grad_();  // the same rounded inputs
      Tensor w = random(shape, DType::F64, 52);
      Tensor y32 = c.op(x32), y64 = c.op(x64);
      EXPECT_EQ(y32.dtype(), DType::F32);
      EXPECT_LT(rel_error(y32, y64), 1e-6) << c.name;
      y32.backward(w.to(DType::F32));
      y64.backward(w);
      EXPECT_LT(rel_error(x32.grad(), x64.grad()), 1e-6) << c.name;
    }
  }
}

TEST(ElementwiseFloat32, BinaryAgreesWithFloat64) {
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {{2, 3, 4}, {3, 1}}, {{64, 1000}, {1000}}, {{300, 200}, {300, 200}}, {{5, 7}, {}}};
  for (const BinaryCase& c : binary_cases()) {
    for (const auto& [sa, sb] : pairs) {
      Tensor a32 = random(sa, DType::F32, 53).requires_grad_();
      Tensor b32 = away_from_zero(sb, DType::F32, 54).requires_grad_();
      Tensor a64 = a32.detach().to(DType::F64).requires_grad_();
      Tensor b64 = b32.detach().to(DType::F64).requires_grad_();
      Tensor y32 = c.op(a32, b32), y64 = c.op(a64, b64);
      EXPECT_LT(rel_error(y32, y64), 1e-6) << c.name << " " << shape_str(sa);
      Tensor w = random(y64.shape(), DType::F64, 55);
      y32.backward(w.to(DType::F32));
      y64.backward(w);
      // b's gradient sums many terms in float32 (reduce_to_shape) — still well within 1e-5
      EXPECT_LT(rel_error(a32.grad(), a64.grad()), 1e-5) << c.name << " " << shape_str(sa);
      EXPECT_LT(rel_error(b32.grad(), b64.grad()), 1e-5) << c.name << " " << shape_str(sb);
    }
  }
}

// ---------------------------------------------------------------- PyTorch

TEST(ElementwiseTorch, ActivationsMatchPyTorch) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  Tensor x = mul_scalar(random({3, 4, 5}, DType::F64, 61), 4.0);
  x.set({0, 0, 0}, 25.0);  // softplus past its threshold
  x.set({0, 0, 1}, -30.0);
  Tensor w = random({3, 4, 5}, DType::F64, 62);
  auto ref = ssm::testing::run_torch("elementwise_ref.py", {{"x", x}, {"w", w}});
  const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> ops = {
      {"gelu_erf", [](const Tensor& t) { return gelu(t, GeluApprox::Erf); }},
      {"gelu_tanh", [](const Tensor& t) { return gelu(t, GeluApprox::Tanh); }},
      {"softplus", [](const Tensor& t) { return softplus(t); }},
      {"silu", [](const Tensor& t) { return silu(t); }},
      {"sigmoid", [](const Tensor& t) { return sigmoid(t); }},
      {"tanh", [](const Tensor& t) { return tanh(t); }},
  };
  for (const auto& [name, fn] : ops) {
    Tensor xi = x.detach().clone().requires_grad_();
    Tensor y = fn(xi);
    y.backward(w);
    ASSERT_TRUE(ref.count(name)) << name;
    EXPECT_LT(rel_error(y, ref[name]), 1e-12) << name;
    EXPECT_LT(rel_error(xi.grad(), ref[std::string(name) + "_grad"]), 1e-12) << name;
  }
}

TEST(ElementwiseTorch, BroadcastingMulDivAndCompositeGradsMatchPyTorch) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  Tensor a = random({2, 3, 4}, DType::F64, 63);
  Tensor b = random({3, 1}, DType::F64, 64);
  Tensor c = away_from_zero({4}, DType::F64, 65);
  Tensor wab = random({2, 3, 4}, DType::F64, 66);
  auto ref =
      ssm::testing::run_torch("elementwise_ref.py", {{"a", a}, {"b", b}, {"c", c}, {"wab", wab}});
  auto leaf = [](const Tensor& t) { return t.detach().clone().requires_grad_(); };
  {
    Tensor la = leaf(a), lb = leaf(b);
    Tensor y = la * lb;
    y.backward(wab);
    EXPECT_LT(rel_error(y, ref["mul"]), 1e-14);
    EXPECT_LT(rel_error(la.grad(), ref["mul_grad_a"]), 1e-13);
    EXPECT_LT(rel_error(lb.grad(), ref["mul_grad_b"]), 1e-13);
  }
  {
    Tensor la = leaf(a), lc = leaf(c);
    Tensor y = la / lc;
    y.backward(wab);
    EXPECT_LT(rel_error(y, ref["div"]), 1e-14);
    EXPECT_LT(rel_error(la.grad(), ref["div_grad_a"]), 1e-13);
    EXPECT_LT(rel_error(lc.grad(), ref["div_grad_c"]), 1e-13);
  }
  {
    Tensor la = leaf(a), lb = leaf(b), lc = leaf(c);
    Tensor y = silu(la * lb) / lc + gelu(la - lc, GeluApprox::Tanh) * softplus(lb);
    y.backward(wab);
    EXPECT_LT(rel_error(y, ref["composite"]), 1e-12);
    EXPECT_LT(rel_error(la.grad(), ref["composite_grad_a"]), 1e-12);
    EXPECT_LT(rel_error(lb.grad(), ref["composite_grad_b"]), 1e-12);
    EXPECT_LT(rel_error(lc.grad(), ref["composite_grad_c"]), 1e-12);
  }
}
