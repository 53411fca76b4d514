// s4d_kernel: the fused Vandermonde kernel against a plain complex loop, against the impulse
// response of the diagonal recurrence, finite differences, float32, and PyTorch autograd.
#include <cmath>
#include <complex>

#include "ssm/autograd/gradcheck.h"
#include "ssm/autograd/node.h"
#include "ssm/core/rng.h"
#include "ssm/ops/s4d_kernel.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using ssm::testing::rel_error;
using cd = std::complex<double>;

namespace {

struct Params {
  Tensor log_dt, A_re_log, A_im, B_re, B_im, C_re, C_im;
  std::vector<Tensor> list() const { return {log_dt, A_re_log, A_im, B_re, B_im, C_re, C_im}; }
};

// Fresh parameters in the ranges the layer initialises: Δ ∈ [dt_min, dt_max] log-uniform,
// Re A around −½, Im A spread over ±im_scale, B and C normal.
Params make_params(int64_t H, int64_t N2, uint64_t seed, double dt_min = 1e-3, double dt_max = 1e-1,
                   double im_scale = 10.0) {
  Generator g(seed);
  Params p;
  p.log_dt = rand_uniform({H}, std::log(dt_min), std::log(dt_max), DType::F64, &g);
  p.A_re_log = rand_uniform({H, N2}, std::log(0.2), std::log(1.5), DType::F64, &g);
  p.A_im = rand_uniform({H, N2}, -im_scale, im_scale, DType::F64, &g);
  p.B_re = randn({H, N2}, DType::F64, &g);
  p.B_im = randn({H, N2}, DType::F64, &g);
  p.C_re = randn({H, N2}, DType::F64, &g);
  p.C_im = randn({H, N2}, DType::F64, &g);
  for (Tensor* t : {&p.log_dt, &p.A_re_log, &p.A_im, &p.B_re, &p.B_im, &p.C_re, &p.C_im})
    t->requires_grad_();
  return p;
}

Tensor run(const Params& p, int64_t L, Discretization d) {
  return s4d_kernel(p.log_dt, p.A_re_log, p.A_im, p.B_re, p.B_im, p.C_re, p.C_im, L, d);
}

// Per (h, n): continuous A, discrete Ā and B̄, written straight from DESIGN §5.
struct Discrete {
  cd A, A_bar, B_bar, C;
};
Discrete discretise(const Params& p, int64_t h, int64_t n, Discretization d) {
  const double dt = std::exp(p.log_dt.at({h}));
  const cd A(-std::exp(p.A_re_log.at({h, n})), p.A_im.at({h, n}));
  const cd B(p.B_re.at({h, n}), p.B_im.at({h, n})), C(p.C_re.at({h, n}), p.C_im.at({h, n}));
  if (d == Discretization::ZOH) return {A, std::exp(dt * A), B * (std::exp(dt * A) - 1.0) / A, C};
  return {A, (1.0 + dt * A / 2.0) / (1.0 - dt * A / 2.0), dt * B / (1.0 - dt * A / 2.0), C};
}

// K[h, l] = 2·Re Σ_n C B̄ Ā^l with Ā^l = exp(l·log Ā), one term at a time.
Tensor plain_kernel(const Params& p, int64_t L, Discretization d) {
  const int64_t H = p.A_im.size(0), N2 = p.A_im.size(1);
  Tensor K = Tensor::zeros({H, L}, DType::F64);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t n = 0; n < N2; ++n) {
      Discrete m = discretise(p, h, n, d);
      for (int64_t l = 0; l < L; ++l)
        K.set({h, l},
              K.at({h, l}) + 2 * (m.C * m.B_bar * std::exp(double(l) * std::log(m.A_bar))).real());
    }
  return K;
}

// Impulse response of x_k = Ā x_{k−1} + B̄ u_k, y_k = 2·Re Σ_n C x_k, with u = δ.
Tensor impulse_response(const Params& p, int64_t L, Discretization d) {
  const int64_t H = p.A_im.size(0), N2 = p.A_im.size(1);
  Tensor y = Tensor::zeros({H, L}, DType::F64);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t n = 0; n < N2; ++n) {
      Discrete m = discretise(p, h, n, d);
      cd x = 0;
      for (int64_t k = 0; k < L; ++k) {
        x = m.A_bar * x + m.B_bar * (k == 0 ? 1.0 : 0.0);
        y.set({h, k}, y.at({h, k}) + 2 * (m.C * x).real());
      }
    }
  return y;
}

const Discretization kBoth[] = {Discretization::ZOH, Discretization::Bilinear};

}  // namespace

TEST(S4DKernel, MatchesPlainComplexLoop) {
  for (Discretization d : kBoth) {
    SCOPED_TRACE(discretization_name(d));
    Params p = make_params(3, 5, 21);
    for (int64_t L : {1, 7, 64, 65, 300}) {
      Tensor K = run(p, L, d);
      EXPECT_LE(rel_error(K, plain_kernel(p, L, d)), 1e-12) << L;
    }
  }
}

TEST(S4DKernel, IsTheImpulseResponseOfTheDiagonalRecurrence) {
  // Slow modes (small Δ) so the sequence crosses many blocks and exact re-seeds.
  for (Discretization d : kBoth) {
    SCOPED_TRACE(discretization_name(d));
    Params p = make_params(2, 6, 22, 1e-4, 3e-3, 40.0);
    const int64_t L = 5000;
    EXPECT_LE(rel_error(run(p, L, d), impulse_response(p, L, d)), 1e-10);
  }
}

TEST(S4DKernel, StaysExactOverLongSequences) {
  // 40000 steps of a barely decaying, fast-rotating mode: errors must not grow with l.
  Params p = make_params(1, 3, 23, 1e-4, 2e-4, 300.0);
  const int64_t L = 40000;
  Tensor K = run(p, L, Discretization::ZOH), ref = plain_kernel(p, L, Discretization::ZOH);
  EXPECT_LE(rel_error(K.narrow(1, L - 2000, 2000), ref.narrow(1, L - 2000, 2000)), 1e-10);
}

TEST(S4DKernel, MixesFastDecayingAndSlowModes) {
  // Mode 0 decays by e^-8 per step (dropped after a few steps), mode 1 barely decays.
  Params p = make_params(1, 2, 24);
  {
    NoGradGuard ng;
    p.log_dt.set({0}, std::log(2.0));
    p.A_re_log.set({0, 0}, std::log(4.0));
    p.A_re_log.set({0, 1}, std::log(1e-4));
  }
  for (Discretization d : kBoth) {
    Tensor K = run(p, 3000, d);
    EXPECT_LE(rel_error(K, plain_kernel(p, 3000, d)), 1e-12) << discretization_name(d);
  }
}

TEST(S4DKernel, GradcheckEveryInput) {
  for (Discretization d : kBoth) {
    for (int64_t L : {1, 150, 1100}) {
      SCOPED_TRACE(std::string(discretization_name(d)) + " L=" + std::to_string(L));
      Params p = make_params(2, 3, 25, 1e-3, 3e-2, 4.0);
      auto r = gradcheck(
          [&](const std::vector<Tensor>& in) {
            return s4d_kernel(in[0], in[1], in[2], in[3], in[4], in[5], in[6], L, d);
          },
          p.list());
      EXPECT_TRUE(r.ok) << r.report;
    }
  }
}

TEST(S4DKernel, Float32AgreesWithFloat64) {
  for (Discretization d : kBoth) {
    SCOPED_TRACE(discretization_name(d));
    Params p64 = make_params(4, 8, 26);
    Params p32;
    Tensor* dst[] = {&p32.log_dt, &p32.A_re_log, &p32.A_im, &p32.B_re,
                     &p32.B_im,   &p32.C_re,     &p32.C_im};
    std::vector<Tensor> src = p64.list();
    for (int i = 0; i < 7; ++i) {
      // Round the inputs once so both runs see identical values.
      *dst[i] = src[i].detach().to(DType::F32);
      src[i] = dst[i]->to(DType::F64).detach().requires_grad_();
    }
    for (Tensor* t : dst) t->requires_grad_();
    const int64_t L = 2000;
    Tensor w = ssm::testing::random({4, L}, DType::F64, 27);
    Tensor K64 = s4d_kernel(src[0], src[1], src[2], src[3], src[4], src[5], src[6], L, d);
    Tensor K32 = run(p32, L, d);
    EXPECT_LE(rel_error(K32, K64), 1e-5);
    K64.backward(w);
    K32.backward(w.to(DType::F32));
    for (int i = 0; i < 7; ++i) EXPECT_LE(rel_error(dst[i]->grad(), src[i].grad()), 1e-5) << i;
  }
}

TEST(S4DKernel, MatchesTorchAutograd) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  const char* names[] = {"log_dt", "A_re_log", "A_im", "B_re", "B_im", "C_re", "C_im"};
  for (Discretization d : kBoth) {
    SCOPED_TRACE(discretization_name(d));
    Params p = make_params(3, 4, 28);
    const int64_t L = 200;
    Tensor w = ssm::testing::random({3, L}, DType::F64, 29);
    std::map<std::string, Tensor> inputs;
    std::vector<Tensor> list = p.list();
    for (int i = 0; i < 7; ++i) inputs[names[i]] = list[i].detach();
    inputs["w"] = w;
    inputs["L"] = Tensor::from_vector({double(L)}, {1}, DType::F64);
    inputs["bilinear"] =
        Tensor::from_vector({d == Discretization::Bilinear ? 1.0 : 0.0}, {1}, DType::F64);
    auto ref = ssm::testing::run_torch("s4d_kernel_ref.py", inputs);
    Tensor K = run(p, L, d);
    EXPECT_LE(rel_error(K, ref.at("K")), 1e-10);
    K.backward(w);
    for (int i = 0; i < 7; ++i)
      EXPECT_LE(rel_error(list[i].grad(), ref.at(std::string("grad_") + names[i])), 1e-10)
          << names[i];
  }
}

TEST(S4DKernel, RejectsBadInputs) {
  Params p = make_params(2, 3, 30);
  Tensor bad = ssm::testing::random({2, 4});
  EXPECT_SSM_ERROR(s4d_kernel(p.log_dt, p.A_re_log, p.A_im, p.B_re, bad, p.C_re, p.C_im, 8),
                   "s4d_kernel", "'B_im'", "(2, 3)", "(2, 4)");
  EXPECT_SSM_ERROR(s4d_kernel(p.log_dt, p.A_re_log, p.A_im, p.B_re, p.B_im, p.C_re, p.C_im, 0),
                   "s4d_kernel", "'L'", ">= 1", "0");
  EXPECT_SSM_ERROR(s4d_kernel(p.log_dt, p.A_re_log, p.A_im, p.B_re, p.B_im, p.C_re, p.C_im, -3),
                   "s4d_kernel", "'L'", "-3");
  EXPECT_SSM_ERROR(
      s4d_kernel(ssm::testing::random({3}), p.A_re_log, p.A_im, p.B_re, p.B_im, p.C_re, p.C_im, 8),
      "s4d_kernel", "'A_re_log'", "H = 3", "(2, 3)");
  EXPECT_SSM_ERROR(s4d_kernel(ssm::testing::random({2, 1}), p.A_re_log, p.A_im, p.B_re, p.B_im,
                              p.C_re, p.C_im, 8),
                   "s4d_kernel", "'log_dt'", "(H)", "(2, 1)");
  EXPECT_SSM_ERROR(s4d_kernel(p.log_dt, p.A_re_log, p.A_im, p.B_re, p.B_im,
                              p.C_re.detach().to(DType::F32), p.C_im, 8),
                   "s4d_kernel", "'C_re'", "float64", "float32");
}
