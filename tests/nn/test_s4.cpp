// S4 (DPLR) layer: against a plain float64 dense recurrence, convolution mode = step mode
// (float64 and float32, before and after perturbing every parameter), kernels for other lengths
// than C̃ was made for, finite-difference gradients, PyTorch autograd (rank 1 and 2), bad inputs.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <map>
#include <string>

#include "ssm/autograd/gradcheck.h"
#include "ssm/autograd/node.h"
#include "ssm/core/rng.h"
#include "ssm/nn/s4.h"
#include "ssm/ops/elementwise.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using ssm::testing::rel_error;
using cd = std::complex<double>;

namespace {

// ---- dense complex matrices, as plainly as possible (row-major n×n) ----
using CMat = std::vector<cd>;

CMat identity(int64_t n) {
  CMat I(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) I[i * n + i] = 1.0;
  return I;
}

CMat matmul(const CMat& a, const CMat& b, int64_t n) {
  CMat c(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < n; ++j) c[i * n + j] += a[i * n + k] * b[k * n + j];
  return c;
}

std::vector<cd> matvec(const CMat& a, const std::vector<cd>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<cd> y(n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) y[i] += a[i * n + j] * x[j];
  return y;
}

// Gauss–Jordan elimination with partial pivoting.
CMat inverse(CMat a, int64_t n) {
  CMat inv = identity(n);
  for (int64_t col = 0; col < n; ++col) {
    int64_t piv = col;
    for (int64_t r = col + 1; r < n; ++r)
      if (std::abs(a[r * n + col]) > std::abs(a[piv * n + col])) piv = r;
    for (int64_t j = 0; j < n; ++j) {
      std::swap(a[col * n + j], a[piv * n + j]);
      std::swap(inv[col * n + j], inv[piv * n + j]);
    }
    const cd d = a[col * n + col];
    for (int64_t j = 0; j < n; ++j) {
      a[col * n + j] /= d;
      inv[col * n + j] /= d;
    }
    for (int64_t r = 0; r < n; ++r) {
      if (r == col) continue;
      const cd f = a[r * n + col];
      for (int64_t j = 0; j < n; ++j) {
        a[r * n + j] -= f * a[col * n + j];
        inv[r * n + j] -= f * inv[col * n + j];
      }
    }
  }
  return inv;
}

// Channel h of the layer over the full basis (kept modes, then their conjugates), from
// DESIGN §5: A = diag(Λ, conj Λ) − Σ_r p_r p_r*, bilinear Ā, B̄, and the readouts C recovered
// from C̃ = C(I − Ā^l_max) as C = C̃(I − Ā^l_max)⁻¹.
struct DenseChannel {
  int64_t n;
  CMat A_bar;
  std::vector<cd> B_bar, C, C_bwd;
};

DenseChannel dense_channel(const nn::S4& m, int64_t h) {
  const int64_t N = m.options.d_state, M = N / 2, R = m.rank();
  auto full = [&](const Tensor& re, const Tensor& im, std::vector<int64_t> prefix) {
    std::vector<cd> v(N);
    for (int64_t n = 0; n < M; ++n) {
      std::vector<int64_t> idx = prefix;
      idx.push_back(n);
      v[n] = cd(re.at(idx), im.at(idx));
      v[M + n] = std::conj(v[n]);
    }
    return v;
  };
  CMat A(N * N, 0.0);
  for (int64_t n = 0; n < M; ++n) {
    const cd lambda(-std::exp(m.Lambda_re_log.at({h, n})), m.Lambda_im.at({h, n}));
    A[n * N + n] = lambda;
    A[(M + n) * N + M + n] = std::conj(lambda);
  }
  for (int64_t r = 0; r < R; ++r) {
    const std::vector<cd> p = full(m.P_re, m.P_im, {r, h});
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) A[i * N + j] -= p[i] * std::conj(p[j]);
  }
  const double dt = std::exp(m.log_dt.at({h}));
  CMat minus(N * N), plus(N * N);
  const CMat I = identity(N);
  for (int64_t i = 0; i < N * N; ++i) {
    minus[i] = I[i] - 0.5 * dt * A[i];
    plus[i] = I[i] + 0.5 * dt * A[i];
  }
  const CMat left = inverse(minus, N);
  DenseChannel c{N, matmul(left, plus, N), {}, {}, {}};
  std::vector<cd> B = full(m.B_re, m.B_im, {h});
  for (cd& b : B) b *= dt;
  c.B_bar = matvec(left, B);
  CMat power = I;
  for (int64_t l = 0; l < m.options.l_max; ++l) power = matmul(power, c.A_bar, N);
  CMat one_minus(N * N);
  for (int64_t i = 0; i < N * N; ++i) one_minus[i] = I[i] - power[i];
  const CMat inv = inverse(one_minus, N);
  auto readout = [&](const Tensor& re, const Tensor& im) {
    const std::vector<cd> ct = full(re, im, {h});
    std::vector<cd> C(N, 0.0);
    for (int64_t j = 0; j < N; ++j)
      for (int64_t i = 0; i < N; ++i) C[j] += ct[i] * inv[i * N + j];
    return C;
  };
  c.C = readout(m.C_re, m.C_im);
  if (m.options.bidirectional) c.C_bwd = readout(m.C_re_bwd, m.C_im_bwd);
  return c;
}

// y_l = Re Σ C x_l + D u_l with x_l = Ā x_{l−1} + B̄ u_l; bidirectional adds Re Σ C_bwd w_l with
// w_l = Ā w_{l+1} + B̄ u_{l+1} (w_{L−1} = 0): the strictly-future inputs.
Tensor plain_s4(const nn::S4& m, const Tensor& u) {
  const int64_t B = u.size(0), L = u.size(1), H = u.size(2);
  Tensor y = Tensor::empty({B, L, H}, DType::F64);
  for (int64_t h = 0; h < H; ++h) {
    const DenseChannel c = dense_channel(m, h);
    for (int64_t b = 0; b < B; ++b) {
      std::vector<cd> x(c.n, 0.0);
      for (int64_t l = 0; l < L; ++l) {
        x = matvec(c.A_bar, x);
        cd out = 0;
        for (int64_t i = 0; i < c.n; ++i) {
          x[i] += c.B_bar[i] * u.at({b, l, h});
          out += c.C[i] * x[i];
        }
        y.set({b, l, h}, out.real() + m.D.at({h}) * u.at({b, l, h}));
      }
      if (!m.options.bidirectional) continue;
      std::vector<cd> w(c.n, 0.0);
      for (int64_t l = L - 1; l >= 0; --l) {
        cd out = 0;
        for (int64_t i = 0; i < c.n; ++i) out += c.C_bwd[i] * w[i];
        y.set({b, l, h}, y.at({b, l, h}) + out.real());
        w = matvec(c.A_bar, w);
        for (int64_t i = 0; i < c.n; ++i) w[i] += c.B_bar[i] * u.at({b, l, h});
      }
    }
  }
  return y;
}

// Adds noise to every parameter, as training would: the checks must not depend on the init.
void perturb(nn::S4& m, uint64_t seed, double scale = 0.1) {
  NoGradGuard ng;
  Generator g(seed);
  for (auto& np : m.named_parameters()) {
    Tensor noise = mul_scalar(randn(np.tensor.shape(), np.tensor.dtype(), &g), scale);
    np.tensor.copy_(add(np.tensor, noise));
  }
}

// The step mode run over the whole sequence: (B, L, H) → (B, L, H).
Tensor run_steps(const nn::S4& m, const Tensor& u) {
  const int64_t B = u.size(0), L = u.size(1), H = u.size(2);
  nn::S4State state = m.init_state(B);
  Tensor y = Tensor::empty({B, L, H}, u.dtype());
  for (int64_t l = 0; l < L; ++l) y.select(1, l).copy_(m.step(u.select(1, l), state));
  return y;
}

nn::S4Options options(const char* init, int64_t H, int64_t N, int64_t l_max,
                      bool bidirectional = false) {
  nn::S4Options o;
  o.d_model = H;
  o.d_state = N;
  o.l_max = l_max;
  o.init = init;
  o.bidirectional = bidirectional;
  return o;
}

}  // namespace

TEST(S4Layer, InitIsTheHippoDPLRForm) {
  Generator g(1);
  nn::S4 legs(options("legs", 3, 8, 32), g, DType::F64);
  EXPECT_EQ(legs.rank(), 1);
  EXPECT_EQ(shape_str(legs.P_re.shape()), "(1, 3, 4)");
  for (int64_t n = 0; n < 4; ++n) EXPECT_NEAR(legs.Lambda_re().at({2, n}), -0.5, 1e-14);
  nn::S4 legt(options("legt", 3, 8, 32), g, DType::F64);
  EXPECT_EQ(legt.rank(), 2);
  EXPECT_EQ(shape_str(legt.P_re.shape()), "(2, 3, 4)");
  for (int64_t n = 0; n < 4; ++n) EXPECT_NEAR(legt.Lambda_re().at({1, n}), -1e-4, 1e-16);
  for (auto& np : legs.named_parameters()) {
    const bool ssm = np.name != "C_re" && np.name != "C_im" && np.name != "D";
    EXPECT_EQ(np.kind == nn::ParamKind::SSM, ssm) << np.name;
  }
}

TEST(S4Layer, ForwardEqualsThePlainDenseRecurrence) {
  for (const char* init : {"legs", "legt"})
    for (bool bidirectional : {false, true}) {
      SCOPED_TRACE(std::string(init) + (bidirectional ? " bidirectional" : ""));
      Generator g(2);
      nn::S4 m(options(init, 3, 8, 64, bidirectional), g, DType::F64);
      for (int trained = 0; trained < 2; ++trained) {
        if (trained) perturb(m, 3);
        for (int64_t L : {64, 41}) {  // l_max itself, and a shorter sequence (kernel cut)
          Tensor u = ssm::testing::random({2, L, 3}, DType::F64, 4);
          EXPECT_LE(rel_error(m.forward(u), plain_s4(m, u)), 1e-10) << trained << " L=" << L;
        }
      }
    }
}

TEST(S4Layer, ConvolutionModeEqualsStepMode) {
  for (const char* init : {"legs", "legt"})
    for (DType dt : {DType::F64, DType::F32}) {
      SCOPED_TRACE(std::string(init) + " " + dtype_name(dt));
      Generator g(5);
      nn::S4 m(options(init, 4, 16, 256), g, dt);
      const double bound = dt == DType::F64 ? 1e-10 : 1e-5;
      for (int trained = 0; trained < 2; ++trained) {
        if (trained) perturb(m, 6);
        for (int64_t L : {256, 100}) {
          Tensor u = ssm::testing::random({2, L, 4}, dt, 7);
          Tensor y = m.forward(u);
          EXPECT_EQ(y.dtype(), dt);
          EXPECT_LE(rel_error(y, run_steps(m, u)), bound) << trained << " L=" << L;
        }
      }
    }
}

TEST(S4Layer, KernelForAnotherLengthThanTrained) {
  Generator g(8);
  nn::S4 m(options("legs", 3, 8, 64), g, DType::F64);
  perturb(m, 9);
  // Longer than l_max without gradients: C̃ is converted inside kernel().
  Tensor u = ssm::testing::random({2, 150, 3}, DType::F64, 10);
  {
    NoGradGuard ng;
    EXPECT_LE(rel_error(m.forward(u), run_steps(m, u)), 1e-10);
  }
  // With gradients the conversion is refused: it would not be differentiable.
  EXPECT_SSM_ERROR(m.forward(u), "S4::kernel", "150", "l_max 64", "change_kernel_length");
  // Re-expressing C̃ for another length keeps the layer's function and makes it trainable there.
  Tensor before;
  {
    NoGradGuard ng;
    before = m.forward(u);
  }
  for (int64_t L : {150, 40, 97}) {
    m.change_kernel_length(L);
    EXPECT_EQ(m.options.l_max, L);
    Tensor v = u.narrow(1, 0, L).contiguous();
    Tensor y = m.forward(v);
    EXPECT_TRUE(y.requires_grad());
    EXPECT_LE(rel_error(y, run_steps(m, v)), 1e-10) << L;
    EXPECT_LE(rel_error(y, before.narrow(1, 0, L)), 1e-10) << L;
    EXPECT_LE(rel_error(y, plain_s4(m, v)), 1e-10) << L;
  }
}

TEST(S4Layer, GradientsMatchFiniteDifferences) {
  for (const char* init : {"legs", "legt"})
    for (bool bidirectional : {false, true}) {
      SCOPED_TRACE(std::string(init) + (bidirectional ? " bidirectional" : ""));
      Generator g(11);
      nn::S4 m(options(init, 2, 4, 12, bidirectional), g, DType::F64);
      perturb(m, 12);
      {
        // LegT starts at Re Λ = −1e-4, where y depends on Lambda_re_log only through a factor
        // 1e-4 and central differences of it drown in rounding: move Re Λ to [−0.5, −0.05].
        NoGradGuard ng;
        m.Lambda_re_log.copy_(rand_uniform({2, 2}, std::log(0.05), std::log(0.5), DType::F64, &g));
      }
      std::vector<Tensor> inputs{ssm::testing::random({2, 9, 2}, DType::F64, 13, true)};
      for (auto& np : m.named_parameters()) inputs.push_back(np.tensor);
      EXPECT_EQ(inputs.size(), bidirectional ? 13u : 11u);
      for (int64_t L : {12, 9}) {
        inputs[0] = ssm::testing::random({2, L, 2}, DType::F64, 13 + L, true);
        auto r = gradcheck([&](const std::vector<Tensor>& in) { return m.forward(in[0]); }, inputs);
        EXPECT_TRUE(r.ok) << "L=" << L << "\n" << r.report;
      }
    }
}

TEST(S4Layer, RejectsBadInputs) {
  Generator g(14);
  EXPECT_SSM_ERROR(nn::S4(options("legs", 2, 7, 16), g), "S4", "d_state", "even", "7");
  EXPECT_SSM_ERROR(nn::S4(options("fout", 2, 8, 16), g), "S4", "init", "legs", "legt", "fout");
  EXPECT_SSM_ERROR(nn::S4(options("legs", 2, 8, 0), g), "S4", "l_max", "0");
  EXPECT_SSM_ERROR(nn::S4(options("legs", 0, 8, 16), g), "S4", "d_model", "0");
  nn::S4 m(options("legs", 2, 8, 16), g, DType::F64);
  EXPECT_SSM_ERROR(m.forward(ssm::testing::random({2, 5, 3})), "S4", "'x'", "(B, L, 2)",
                   "(2, 5, 3)");
  EXPECT_SSM_ERROR(m.forward(ssm::testing::random({5, 2})), "S4", "'x'", "(5, 2)");
  EXPECT_SSM_ERROR(m.forward(ssm::testing::random({2, 5, 2}, DType::F32)), "S4", "'x'", "float64",
                   "float32");
  EXPECT_SSM_ERROR(m.kernel(0), "S4::kernel", "'L'", "0");
  EXPECT_SSM_ERROR(m.change_kernel_length(-2), "S4::change_kernel_length", "'L'", "-2");
  EXPECT_SSM_ERROR(m.backward_kernel(8), "S4::backward_kernel", "not bidirectional");
  nn::S4State s = m.init_state(2);
  EXPECT_SSM_ERROR(m.step(ssm::testing::random({2, 3}), s), "S4::step", "'x_t'", "(B, 2)",
                   "(2, 3)");
  EXPECT_SSM_ERROR(m.step(ssm::testing::random({1, 2}), s), "S4::step", "'state'", "batch 2",
                   "batch 1");
  nn::S4 bidi(options("legs", 2, 8, 16, true), g, DType::F64);
  EXPECT_SSM_ERROR(bidi.init_state(1), "S4", "bidirectional", "step");
}

// ---- against PyTorch autograd (tests/python/s4_ref.py: dense complex Ā, B̄, C from C̃ by a
// dense solve, taps by repeated matrix–vector products, a direct causal sum; float64) ----

namespace {

// Output and the gradients of x and every parameter of the weighted loss Σ w ⊙ y, for LegS
// (rank 1) or LegT (rank 2), causal and bidirectional, at L = l_max and at a cut kernel.
void expect_matches_torch(const char* init, uint64_t seed) {
  const int64_t H = 3, N = 8, l_max = 24;
  double worst = 0;
  for (bool bidirectional : {false, true}) {
    Generator g(seed);
    nn::S4 m(options(init, H, N, l_max, bidirectional), g, DType::F64);
    perturb(m, seed + 1);
    ASSERT_EQ(m.named_parameters().size(), bidirectional ? 12u : 10u);
    for (int64_t L : {l_max, int64_t{17}}) {
      SCOPED_TRACE(std::string(init) + (bidirectional ? " bidirectional" : "") +
                   " L=" + std::to_string(L));
      Tensor x = ssm::testing::random({2, L, H}, DType::F64, seed + 2 + L, true);
      Tensor w = ssm::testing::random({2, L, H}, DType::F64, seed + 3 + L);
      std::map<std::string, Tensor> inputs{{"x", x.detach()}, {"w", w}};
      for (const auto& np : m.named_parameters()) inputs[np.name] = np.tensor.detach();
      inputs["l_max"] = Tensor::from_vector({static_cast<double>(l_max)}, {1}, DType::F64);
      auto ref = ssm::testing::run_torch("s4_ref.py", inputs);

      m.zero_grad();
      Tensor y = m.forward(x);
      double err = rel_error(y, ref.at("y"));
      EXPECT_LE(err, 1e-8) << "y";
      worst = std::max(worst, err);
      y.backward(w);
      err = rel_error(x.grad(), ref.at("grad_x"));
      EXPECT_LE(err, 1e-8) << "x";
      worst = std::max(worst, err);
      for (const auto& np : m.named_parameters()) {
        ASSERT_TRUE(np.tensor.grad().defined()) << np.name;
        err = rel_error(np.tensor.grad(), ref.at("grad_" + np.name));
        EXPECT_LE(err, 1e-8) << np.name;
        worst = std::max(worst, err);
      }
    }
  }
  std::printf(
      "[ measured ] S4 %s vs torch autograd (output, x and all parameter gradients): "
      "worst relative error %.2e\n",
      init, worst);
}

}  // namespace

TEST(S4Layer, MatchesTorchAutograd) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  expect_matches_torch("legs", 20);
}

TEST(S4Layer, MatchesTorchAutogradRank2) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  expect_matches_torch("legt", 30);
}
