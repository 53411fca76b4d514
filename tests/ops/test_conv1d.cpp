// Depthwise causal conv1d (ops/conv.h): forward and gradients against plain float64 sums,
// finite differences and PyTorch; the decode update against the full convolution.
#include <vector>

#include "ssm/autograd/gradcheck.h"
#include "ssm/ops/conv.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using ssm::testing::random;
using ssm::testing::rel_error;

namespace {

// y[b,d,l] = bias[d] + Σ_j w[d,j] · x[b,d,l−(k−1)+j], written out with nothing clever.
Tensor reference_conv(const Tensor& x, const Tensor& w, const Tensor& bias) {
  const int64_t B = x.size(0), D = x.size(1), L = x.size(2), K = w.size(1);
  Tensor y = Tensor::zeros({B, D, L}, DType::F64);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t l = 0; l < L; ++l) {
        double s = bias.defined() ? bias.at({d}) : 0.0;
        for (int64_t j = 0; j < K; ++j) {
          const int64_t src = l - (K - 1) + j;
          if (src >= 0) s += w.at({d, j}) * x.at({b, d, src});
        }
        y.set({b, d, l}, s);
      }
  return y;
}

// Gradients of sum(gy ⊙ y) by the definitions: dx[m] = Σ_l gy[l] ∂y[l]/∂x[m], etc.
struct ConvGrads {
  Tensor dx, dw, db;
};
ConvGrads reference_conv_grads(const Tensor& x, const Tensor& w, const Tensor& gy) {
  const int64_t B = x.size(0), D = x.size(1), L = x.size(2), K = w.size(1);
  ConvGrads g{Tensor::zeros(x.shape(), DType::F64), Tensor::zeros(w.shape(), DType::F64),
              Tensor::zeros({D}, DType::F64)};
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t l = 0; l < L; ++l) {
        const double go = gy.at({b, d, l});
        g.db.set({d}, g.db.at({d}) + go);
        for (int64_t j = 0; j < K; ++j) {
          const int64_t src = l - (K - 1) + j;
          if (src < 0) continue;
          g.dx.set({b, d, src}, g.dx.at({b, d, src}) + go * w.at({d, j}));
          g.dw.set({d, j}, g.dw.at({d, j}) + go * x.at({b, d, src}));
        }
      }
  return g;
}

struct Case {
  int64_t B, D, L, K;
};

}  // namespace

TEST(CausalConv1d, ForwardMatchesDirectSum) {
  // Widths 2–4 take the unrolled kernels, 1 and 5 the generic one; L ≤ k−1 is all edge.
  for (const Case c : {Case{2, 3, 7, 4}, Case{1, 2, 1, 4}, Case{2, 5, 100, 3}, Case{3, 2, 9, 2},
                       Case{2, 3, 11, 1}, Case{2, 3, 13, 5}, Case{1, 2, 3, 6}}) {
    Tensor x = random({c.B, c.D, c.L}, DType::F64, 21);
    Tensor w = random({c.D, c.K}, DType::F64, 22);
    Tensor bias = random({c.D}, DType::F64, 23);
    EXPECT_LT(rel_error(causal_conv1d(x, w, bias), reference_conv(x, w, bias)), 1e-14)
        << "B=" << c.B << " D=" << c.D << " L=" << c.L << " K=" << c.K;
    EXPECT_LT(rel_error(causal_conv1d(x, w), reference_conv(x, w, Tensor())), 1e-14)
        << "without bias, K=" << c.K;
  }
}

TEST(CausalConv1d, ParallelSizeAndStridedInputMatchDirectSum) {
  // Large enough for the threaded path; x given as a transposed (non-contiguous) view.
  Tensor x_bld = random({4, 300, 64}, DType::F64, 24);
  Tensor x = x_bld.transpose(1, 2);  // (4, 64, 300)
  Tensor w = random({64, 4}, DType::F64, 25);
  Tensor bias = random({64}, DType::F64, 26);
  EXPECT_LT(rel_error(causal_conv1d(x, w, bias), reference_conv(x, w, bias)), 1e-14);
}

TEST(CausalConv1d, BackwardMatchesDirectSum) {
  for (const Case c :
       {Case{2, 3, 7, 4}, Case{4, 64, 300, 4}, Case{2, 3, 13, 5}, Case{1, 2, 2, 4}}) {
    Tensor x = random({c.B, c.D, c.L}, DType::F64, 27, true);
    Tensor w = random({c.D, c.K}, DType::F64, 28, true);
    Tensor bias = random({c.D}, DType::F64, 29, true);
    Tensor gy = random({c.B, c.D, c.L}, DType::F64, 30);
    causal_conv1d(x, w, bias).backward(gy);
    ConvGrads ref = reference_conv_grads(x, w, gy);
    EXPECT_LT(rel_error(x.grad(), ref.dx), 1e-13) << "K=" << c.K << " L=" << c.L;
    EXPECT_LT(rel_error(w.grad(), ref.dw), 1e-13) << "K=" << c.K << " L=" << c.L;
    EXPECT_LT(rel_error(bias.grad(), ref.db), 1e-13) << "K=" << c.K << " L=" << c.L;
  }
}

TEST(CausalConv1d, GradcheckAllInputs) {
  for (const Case c : {Case{2, 3, 7, 4}, Case{2, 2, 1, 4}, Case{1, 2, 6, 5}, Case{2, 2, 5, 2}}) {
    Tensor x = random({c.B, c.D, c.L}, DType::F64, 31, true);
    Tensor w = random({c.D, c.K}, DType::F64, 32, true);
    Tensor bias = random({c.D}, DType::F64, 33, true);
    auto r =
        gradcheck([](const std::vector<Tensor>& in) { return causal_conv1d(in[0], in[1], in[2]); },
                  {x, w, bias});
    EXPECT_TRUE(r.ok) << "K=" << c.K << " L=" << c.L << "\n" << r.report;
  }
  // Without bias, and with only the weight differentiable.
  Tensor x = random({2, 3, 9}, DType::F64, 34);
  Tensor w = random({3, 4}, DType::F64, 35, true);
  auto r =
      gradcheck([](const std::vector<Tensor>& in) { return causal_conv1d(in[0], in[1]); }, {x, w});
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_FALSE(x.grad().defined());
}

TEST(CausalConv1d, Float32AgreesWithFloat64) {
  Tensor x = random({3, 16, 257}, DType::F64, 36, true);
  Tensor w = random({16, 4}, DType::F64, 37, true);
  Tensor bias = random({16}, DType::F64, 38, true);
  Tensor gy = random({3, 16, 257}, DType::F64, 39);
  Tensor y64 = causal_conv1d(x, w, bias);
  y64.backward(gy);

  Tensor x32 = x.detach().to(DType::F32).requires_grad_();
  Tensor w32 = w.detach().to(DType::F32).requires_grad_();
  Tensor b32 = bias.detach().to(DType::F32).requires_grad_();
  Tensor y32 = causal_conv1d(x32, w32, b32);
  EXPECT_EQ(y32.dtype(), DType::F32);
  y32.backward(gy.to(DType::F32));
  EXPECT_LT(rel_error(y32, y64), 1e-6);
  EXPECT_LT(rel_error(x32.grad(), x.grad()), 1e-6);
  EXPECT_LT(rel_error(w32.grad(), w.grad()), 1e-5);
  EXPECT_LT(rel_error(b32.grad(), bias.grad()), 1e-5);
}

TEST(CausalConv1d, UpdateStepByStepEqualsFullConvolution) {
  for (const int64_t K : {4, 2, 5, 1}) {
    for (const DType dt : {DType::F64, DType::F32}) {
      const int64_t B = 2, D = 5, L = 11;
      Tensor x = random({B, D, L}, dt, 40 + K);
      Tensor w = random({D, K}, dt, 41);
      Tensor bias = random({D}, dt, 42);
      Tensor full = causal_conv1d(x, w, bias);
      Tensor state = Tensor::zeros({B, D, K - 1}, dt);
      for (int64_t l = 0; l < L; ++l) {
        Tensor y_t = causal_conv1d_update(x.select(2, l), state, w, bias);
        EXPECT_LT(rel_error(y_t, full.select(2, l).contiguous()), dt == DType::F64 ? 1e-15 : 1e-6)
            << "K=" << K << " step " << l;
      }
      // The state ends holding the last k−1 inputs, oldest first.
      if (K > 1) {
        EXPECT_EQ(rel_error(state, x.narrow(2, L - (K - 1), K - 1).contiguous()), 0.0) << "K=" << K;
      }
    }
  }
}

TEST(CausalConv1d, UpdateContinuesFromAPrefilledState) {
  // Decoding after a prompt: the state filled from the prompt's tail gives the same outputs as
  // convolving prompt and continuation together.
  const int64_t B = 3, D = 4, K = 4, P = 6, L = 10;
  Tensor x = random({B, D, L}, DType::F64, 43);
  Tensor w = random({D, K}, DType::F64, 44);
  Tensor full = causal_conv1d(x, w);
  Tensor state = x.narrow(2, P - (K - 1), K - 1).contiguous();
  for (int64_t l = P; l < L; ++l)
    EXPECT_LT(rel_error(causal_conv1d_update(x.select(2, l), state, w), full.select(2, l)), 1e-15);
}

TEST(CausalConv1d, MatchesPyTorch) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  Tensor x = random({2, 6, 37}, DType::F64, 45, true);
  Tensor w = random({6, 4}, DType::F64, 46, true);
  Tensor bias = random({6}, DType::F64, 47, true);
  Tensor gy = random({2, 6, 37}, DType::F64, 48);
  Tensor y = causal_conv1d(x, w, bias);
  y.backward(gy);
  auto ref =
      ssm::testing::run_torch("conv_ref.py", {{"x", x}, {"weight", w}, {"bias", bias}, {"gy", gy}});
  EXPECT_LT(rel_error(y, ref.at("y")), 1e-13);
  EXPECT_LT(rel_error(x.grad(), ref.at("dx")), 1e-13);
  EXPECT_LT(rel_error(w.grad(), ref.at("dweight")), 1e-13);
  EXPECT_LT(rel_error(bias.grad(), ref.at("dbias")), 1e-13);
}

TEST(CausalConv1d, RejectsBadInputs) {
  Tensor x = random({2, 3, 8}, DType::F64, 49);
  Tensor w = random({3, 4}, DType::F64, 50);
  Tensor bias = random({3}, DType::F64, 51);
  EXPECT_SSM_ERROR(causal_conv1d(random({3, 8}), w), "causal_conv1d", "'x'", "(B, D, L)", "(3, 8)");
  EXPECT_SSM_ERROR(causal_conv1d(x, random({4, 4}, DType::F64)), "causal_conv1d", "'weight'",
                   "(4, 4)");
  EXPECT_SSM_ERROR(causal_conv1d(x, random({3, 1, 4}, DType::F64)), "causal_conv1d", "'weight'",
                   "(D, k)", "(3, 1, 4)");
  EXPECT_SSM_ERROR(causal_conv1d(x, Tensor::zeros({3, 0}, DType::F64)), "causal_conv1d", "'weight'",
                   "(3, 0)");
  EXPECT_SSM_ERROR(causal_conv1d(x, w, random({4}, DType::F64)), "causal_conv1d", "'bias'", "(3)",
                   "(4)");
  EXPECT_SSM_ERROR(causal_conv1d(x, w.to(DType::F32)), "causal_conv1d", "'weight'", "float64",
                   "float32");
  EXPECT_SSM_ERROR(causal_conv1d(Tensor::zeros({2, 3, 8}, DType::I64), w), "causal_conv1d", "'x'",
                   "int64");
  EXPECT_SSM_ERROR(causal_conv1d(Tensor(), w), "causal_conv1d", "'x'", "undefined");

  Tensor state = random({2, 3, 3}, DType::F64, 52);
  EXPECT_SSM_ERROR(causal_conv1d_update(x.select(2, 0), state, random({3, 5}, DType::F64)),
                   "causal_conv1d_update", "'conv_state'", "(2, 3, 4)", "(2, 3, 3)");
  Tensor strided_state =
      random({2, 3, 3}, DType::F64, 53).transpose(0, 1).contiguous().transpose(0, 1);
  EXPECT_SSM_ERROR(causal_conv1d_update(x.select(2, 0), strided_state, w), "causal_conv1d_update",
                   "'conv_state'", "contiguous");
  Tensor state32 = state.to(DType::F32);
  EXPECT_SSM_ERROR(causal_conv1d_update(x.select(2, 0), state32, w), "causal_conv1d_update",
                   "'conv_state'", "float64", "float32");
  EXPECT_SSM_ERROR(causal_conv1d_update(x, state, w), "causal_conv1d_update", "'x_t'", "(B, D)",
                   "(2, 3, 8)");
}
