// The tape itself, exercised with a tiny op defined here (square) and the view ops.
#include <algorithm>

#include "ssm/autograd/gradcheck.h"
#include "ssm/autograd/node.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/reduce.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::random;

namespace {
// y = x², elementwise, as an op author would write it.
Tensor squared(const Tensor& x_in) {
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), DType::F64);
  for (int64_t i = 0; i < x.numel(); ++i)
    y.data<double>()[i] = x.data<double>()[i] * x.data<double>()[i];
  Tensor xs = x.detach();
  return record("square", y, {x}, [xs](const std::vector<Tensor>& g) {
    Tensor gx = Tensor::empty(xs.shape(), DType::F64);
    Tensor go = g[0].contiguous();
    for (int64_t i = 0; i < xs.numel(); ++i)
      gx.data<double>()[i] = 2 * xs.data<double>()[i] * go.data<double>()[i];
    return std::vector<Tensor>{gx};
  });
}
}  // namespace

TEST(Autograd, GradientOfSquareThroughViews) {
  Tensor x = random({2, 3}, DType::F64, 11, true);
  Tensor y = squared(x.transpose(0, 1).narrow(0, 1, 2));  // (2, 2) picks columns 1..2
  y.backward(Tensor::ones({2, 2}, DType::F64));
  Tensor g = x.grad();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(g.at({i, 0}), 0.0);
    for (int j = 1; j < 3; ++j) EXPECT_DOUBLE_EQ(g.at({i, j}), 2 * x.at({i, j}));
  }
}

TEST(Autograd, AccumulatesAcrossUsesAndCalls) {
  Tensor x = random({4}, DType::F64, 12, true);
  // x used twice in one graph: d/dx (x² + x²) = 4x
  Tensor a = squared(x), b = squared(x);
  Tensor both = record(
      "add2", Tensor::from_vector({0}, {1}, DType::F64), {a, b}, [](const std::vector<Tensor>&) {
        return std::vector<Tensor>{Tensor::ones({4}, DType::F64), Tensor::ones({4}, DType::F64)};
      });
  both.backward(Tensor::ones({1}, DType::F64));
  for (int i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(x.grad().at({i}), 4 * x.at({i}));
  // a second graph adds on top
  squared(x).backward(Tensor::ones({4}, DType::F64));
  for (int i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(x.grad().at({i}), 6 * x.at({i}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, GraphIsFreedAfterBackward) {
  Tensor x = random({3}, DType::F64, 13, true);
  Tensor y = squared(x);
  std::weak_ptr<Node> node = y.grad_fn();
  y.backward(Tensor::ones({3}, DType::F64));
  EXPECT_TRUE(node.lock()->released);
  EXPECT_SSM_ERROR(y.backward(Tensor::ones({3}, DType::F64)), "already freed");
  Tensor z = squared(x);
  z.backward(Tensor::ones({3}, DType::F64), /*retain_graph=*/true);
  z.backward(Tensor::ones({3}, DType::F64));  // allowed once more
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = random({3}, DType::F64, 14, true);
  {
    NoGradGuard ng;
    Tensor y = squared(x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
  }
  EXPECT_TRUE(squared(x).requires_grad());
}

TEST(Autograd, ExpandGradientSumsBroadcastDims) {
  Tensor x = random({3, 1}, DType::F64, 15, true);
  Tensor y = squared(x.expand({2, 3, 4}));
  y.backward(Tensor::ones({2, 3, 4}, DType::F64));
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(x.grad().at({i, 0}), 8 * 2 * x.at({i, 0}), 1e-12);
}

TEST(Autograd, GradcheckAcceptsRightAndRejectsWrongGradients) {
  Tensor x = random({5}, DType::F64, 16, true);
  auto ok = gradcheck([](const std::vector<Tensor>& in) { return squared(in[0]); }, {x});
  EXPECT_TRUE(ok.ok) << ok.report;
  // A deliberately wrong backward (3x instead of 2x) must be caught.
  auto wrong = [](const std::vector<Tensor>& in) {
    Tensor x = in[0];
    Tensor y = Tensor::empty(x.shape(), DType::F64);
    for (int64_t i = 0; i < x.numel(); ++i)
      y.data<double>()[i] = x.data<double>()[i] * x.data<double>()[i];
    Tensor xs = x.detach();
    return record("bad_square", y, {x}, [xs](const std::vector<Tensor>& g) {
      Tensor gx = Tensor::empty(xs.shape(), DType::F64);
      for (int64_t i = 0; i < xs.numel(); ++i)
        gx.data<double>()[i] = 3 * xs.data<double>()[i] * g[0].data<double>()[i];
      return std::vector<Tensor>{gx};
    });
  };
  auto bad = gradcheck(wrong, {x});
  EXPECT_FALSE(bad.ok);
  EXPECT_GT(bad.worst_relative_error, 0.1);
}

TEST(Autograd, MultiOutputNodeGetsZerosForUnusedOutputs) {
  Tensor x = random({2}, DType::F64, 17, true);
  auto outs = record("two", {x.detach().clone(), x.detach().clone()}, {x},
                     [](const std::vector<Tensor>& g) {
                       EXPECT_EQ(g[1].at({0}), 0.0);  // output 1 got no gradient
                       return std::vector<Tensor>{g[0].clone()};
                     });
  outs[0].backward(Tensor::full({2}, 3.0, DType::F64));
  EXPECT_EQ(x.grad().at({1}), 3.0);
}

// A backward that hands the same gradient tensor to two inputs (add does) must not leave
// their gradient buffers aliased: a later contribution to one would leak into the other.
// Every order of the three terms is tried, since the engine's processing order decides
// whether a contribution arrives after the shared gradient was taken.
TEST(Autograd, GradientSharedByTwoInputsIsNotAliased) {
  std::vector<int> order = {0, 1, 2};
  do {
    Tensor x = random({5}, DType::F64, 21, true), w = random({5}, DType::F64, 22, true);
    Tensor u = mul(x, w), v = mul(x, x);  // two non-leaf inputs of the add below
    // add's backward returns its (fresh, contiguous: from mul_scalar) gradient for both.
    const Tensor terms[3] = {sum(mul_scalar(add(u, v), 1.0), {0}), sum(mul_scalar(u, 3.0), {0}),
                             sum(mul_scalar(v, 5.0), {0})};
    Tensor loss = add(add(terms[order[0]], terms[order[1]]), terms[order[2]]);
    loss.backward();
    // loss = 4u + 6v: d/dx = 4w + 12x, d/dw = 4x.
    const auto gx = x.grad().to_vector(), gw = w.grad().to_vector();
    const auto xv = x.to_vector(), wv = w.to_vector();
    for (size_t i = 0; i < xv.size(); ++i) {
      EXPECT_NEAR(gx[i], 4 * wv[i] + 12 * xv[i], 1e-12) << i;
      EXPECT_NEAR(gw[i], 4 * xv[i], 1e-12) << i;
    }
  } while (std::next_permutation(order.begin(), order.end()));
}

// The gradient passed to backward() is the caller's: the engine may read it in place (no
// copy) but must never write into it, also when a second contribution reaches the same
// slot (two roots sharing one output, and one output used twice further down).
TEST(Autograd, SeedGradientIsReadNotWritten) {
  Tensor x = random({6}, DType::F64, 23, true);
  Tensor y = squared(x);
  const Tensor seed = random({6}, DType::F64, 24), second = random({6}, DType::F64, 25);
  const std::vector<double> seed_before = seed.to_vector(), second_before = second.to_vector();
  run_backward({y, y}, {seed, second}, /*retain_graph=*/true);
  EXPECT_EQ(seed.to_vector(), seed_before);
  EXPECT_EQ(second.to_vector(), second_before);
  const auto xv = x.to_vector();
  for (size_t i = 0; i < xv.size(); ++i)
    EXPECT_NEAR(x.grad().to_vector()[i], 2 * xv[i] * (seed_before[i] + second_before[i]), 1e-12);

  // One seed, taken without a copy, flowing through add's backward to two inputs that also
  // receive other contributions.
  x.zero_grad();
  Tensor u = squared(x), v = mul_scalar(x, 3.0);
  Tensor s = add(u, v);
  Tensor out = add(s, mul_scalar(u, 2.0));  // u gets a gradient from s and from out
  out.backward(seed);
  EXPECT_EQ(seed.to_vector(), seed_before);
  for (size_t i = 0; i < xv.size(); ++i)  // out = 3x² + 3x
    EXPECT_NEAR(x.grad().to_vector()[i], (6 * xv[i] + 3) * seed_before[i], 1e-12);
}
