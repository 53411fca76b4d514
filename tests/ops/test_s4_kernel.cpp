// s4_kernel (DPLR) and the Cauchy kernel under it: against plain loops, against the impulse
// response of the dense bilinear-discretised DPLR recurrence, finite differences, float32.
#include "ssm/ops/s4_kernel.h"

// The test target does not link Eigen3::Eigen; its headers are reached through /usr/include.
#include <cmath>
#include <complex>
#include <eigen3/Eigen/Dense>

#include "ssm/autograd/gradcheck.h"
#include "ssm/autograd/node.h"
#include "ssm/core/rng.h"
#include "ssm/kernels/cauchy.h"
#include "ssm/nn/hippo.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;
using cd = std::complex<double>;

namespace {

struct S4Params {
  Tensor log_dt, Lambda_re, Lambda_im, P_re, P_im, B_re, B_im, C_re, C_im;
  std::vector<Tensor> list() const {
    return {log_dt, Lambda_re, Lambda_im, P_re, P_im, B_re, B_im, C_re, C_im};
  }
  std::vector<Tensor*> ptrs() {
    return {&log_dt, &Lambda_re, &Lambda_im, &P_re, &P_im, &B_re, &B_im, &C_re, &C_im};
  }
};

// Fresh random parameters: Re Λ < 0 (A = Λ − PP* is then dissipative), Δ log-uniform.
S4Params make_params(int64_t H, int64_t N2, int64_t R, uint64_t seed, double dt_min = 1e-3,
                     double dt_max = 1e-1) {
  Generator g(seed);
  S4Params p;
  p.log_dt = rand_uniform({H}, std::log(dt_min), std::log(dt_max), DType::F64, &g);
  p.Lambda_re = rand_uniform({H, N2}, -1.0, -0.1, DType::F64, &g);
  p.Lambda_im = rand_uniform({H, N2}, -10.0, 10.0, DType::F64, &g);
  p.P_re = randn({R, H, N2}, DType::F64, &g);
  p.P_im = randn({R, H, N2}, DType::F64, &g);
  p.B_re = randn({H, N2}, DType::F64, &g);
  p.B_im = randn({H, N2}, DType::F64, &g);
  p.C_re = randn({H, N2}, DType::F64, &g);
  p.C_im = randn({H, N2}, DType::F64, &g);
  for (Tensor* t : p.ptrs()) t->requires_grad_();
  return p;
}

// HiPPO-LegS in DPLR form for every channel, with Δ spread over [1e-3, 1e-1].
S4Params legs_params(int64_t H, int64_t N, uint64_t seed) {
  const nn::DPLR d = nn::hippo_dplr(nn::HippoMeasure::LegS, N);
  const int64_t N2 = N / 2;
  S4Params p = make_params(H, N2, 1, seed);
  NoGradGuard ng;
  for (int64_t h = 0; h < H; ++h)
    for (int64_t n = 0; n < N2; ++n) {
      p.Lambda_re.set({h, n}, d.lambda[n].real());
      p.Lambda_im.set({h, n}, d.lambda[n].imag());
      p.P_re.set({0, h, n}, d.P[n].real());
      p.P_im.set({0, h, n}, d.P[n].imag());
      p.B_re.set({h, n}, d.B[n].real());
      p.B_im.set({h, n}, d.B[n].imag());
    }
  return p;
}

Tensor run(const S4Params& p, int64_t L) {
  return s4_kernel(p.log_dt, p.Lambda_re, p.Lambda_im, p.P_re, p.P_im, p.B_re, p.B_im, p.C_re,
                   p.C_im, L);
}

// p with C replaced by C̃ = C(I − Ā^L).
S4Params with_c_tilde(const S4Params& p, int64_t L) {
  S4Params q = p;
  auto [re, im] =
      s4_c_tilde_from_c(p.log_dt, p.Lambda_re, p.Lambda_im, p.P_re, p.P_im, p.C_re, p.C_im, L);
  q.C_re = re;
  q.C_im = im;
  return q;
}

// Dense complex matrices as plainly as possible (row-major n×n). Eigen is deliberately not used
// here: the library is built with -march=native and this file is not, and two differently
// compiled instantiations of the same Eigen templates must not meet in one program.
using CMat = std::vector<cd>;

CMat matmul(const CMat& a, const CMat& b, int64_t n) {
  CMat c(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < n; ++j) c[i * n + j] += a[i * n + k] * b[k * n + j];
  return c;
}

// Gauss–Jordan elimination with partial pivoting.
CMat inverse(CMat a, int64_t n) {
  CMat inv(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) inv[i * n + i] = 1.0;
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

// The full 2·(N/2) complex system of channel h, built directly from DESIGN §5:
// A = diag(Λ, conj Λ) − Σ_r p_r p_r*, Ā = (I − ΔA/2)⁻¹(I + ΔA/2), B̄ = (I − ΔA/2)⁻¹ΔB.
struct DenseSystem {
  int64_t n;
  CMat A_bar;
  std::vector<cd> B_bar, C;
};
DenseSystem dense_system(const S4Params& p, int64_t h) {
  const int64_t N2 = p.Lambda_re.size(1), N = 2 * N2, R = p.P_re.size(0);
  auto pair = [&](const Tensor& re, const Tensor& im, std::vector<int64_t> idx) {
    return cd(re.at(idx), im.at(idx));
  };
  CMat A(N * N, 0.0);
  std::vector<cd> B(N), C(N);
  for (int64_t n = 0; n < N2; ++n) {
    const cd lam = pair(p.Lambda_re, p.Lambda_im, {h, n});
    A[n * N + n] = lam;
    A[(N2 + n) * N + N2 + n] = std::conj(lam);
    B[n] = pair(p.B_re, p.B_im, {h, n});
    B[N2 + n] = std::conj(B[n]);
    C[n] = pair(p.C_re, p.C_im, {h, n});
    C[N2 + n] = std::conj(C[n]);
  }
  for (int64_t r = 0; r < R; ++r) {
    std::vector<cd> pr(N);
    for (int64_t n = 0; n < N2; ++n) {
      pr[n] = pair(p.P_re, p.P_im, {r, h, n});
      pr[N2 + n] = std::conj(pr[n]);
    }
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) A[i * N + j] -= pr[i] * std::conj(pr[j]);
  }
  const double dt = std::exp(p.log_dt.at({h}));
  CMat minus(N * N), plus(N * N);
  for (int64_t i = 0; i < N * N; ++i) {
    const cd identity = (i / N == i % N) ? 1.0 : 0.0;
    minus[i] = identity - 0.5 * dt * A[i];
    plus[i] = identity + 0.5 * dt * A[i];
  }
  const CMat left = inverse(minus, N);
  std::vector<cd> B_bar(N, 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) B_bar[i] += left[i * N + j] * dt * B[j];
  return {N, matmul(left, plus, N), B_bar, C};
}

// y_l = Re Σ_n C_n x_l,n with x_0 = B̄ (the impulse) and x_l = Ā x_{l−1}.
Tensor dense_impulse_response(const S4Params& p, int64_t L) {
  const int64_t H = p.log_dt.size(0);
  Tensor y = Tensor::empty({H, L}, DType::F64);
  for (int64_t h = 0; h < H; ++h) {
    DenseSystem s = dense_system(p, h);
    std::vector<cd> x = s.B_bar, next(s.n);
    for (int64_t l = 0; l < L; ++l) {
      cd out = 0;
      for (int64_t i = 0; i < s.n; ++i) out += s.C[i] * x[i];
      y.set({h, l}, out.real());
      for (int64_t i = 0; i < s.n; ++i) {
        next[i] = 0;
        for (int64_t j = 0; j < s.n; ++j) next[i] += s.A_bar[i * s.n + j] * x[j];
      }
      x.swap(next);
    }
  }
  return y;
}

}  // namespace

// ---- the Cauchy kernel ----

namespace {
// r[h,m,k] written as plainly as possible.
std::pair<Tensor, Tensor> plain_cauchy(const kernels::cpu::CauchyInputs& in) {
  const int64_t H = in.v_re.size(0), M = in.v_re.size(1), N = in.v_re.size(2), K = in.z_re.size(1);
  Tensor re = Tensor::zeros({H, M, K}, DType::F64), im = Tensor::zeros({H, M, K}, DType::F64);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) {
        cd s = 0;
        const cd z(in.z_re.at({h, k}), in.z_im.at({h, k}));
        for (int64_t n = 0; n < N; ++n) {
          const cd v(in.v_re.at({h, m, n}), in.v_im.at({h, m, n}));
          const cd lam(in.lambda_re.at({h, n}), in.lambda_im.at({h, n}));
          s += v / (z - lam);
          if (in.conjugate_pairs) s += std::conj(v) / (z - std::conj(lam));
        }
        re.set({h, m, k}, s.real());
        im.set({h, m, k}, s.imag());
      }
  return {re, im};
}

kernels::cpu::CauchyInputs random_cauchy(bool conj, uint64_t seed) {
  Generator g(seed);
  return {randn({2, 3, 5}, DType::F64, &g),
          randn({2, 3, 5}, DType::F64, &g),
          randn({2, 5}, DType::F64, &g),
          randn({2, 5}, DType::F64, &g),
          randn({2, 4}, DType::F64, &g),
          randn({2, 4}, DType::F64, &g),
          conj};
}
}  // namespace

TEST(Cauchy, ForwardMatchesPlainLoop) {
  for (bool conj : {true, false}) {
    auto in = random_cauchy(conj, 40);
    auto out = kernels::cpu::cauchy_fwd(in);
    auto [re, im] = plain_cauchy(in);
    EXPECT_LE(rel_error(out.re, re), 1e-13) << conj;
    EXPECT_LE(rel_error(out.im, im), 1e-13) << conj;
  }
}

TEST(Cauchy, BackwardMatchesFiniteDifferences) {
  // ℒ = Σ w_re ⊙ Re r + w_im ⊙ Im r; every input perturbed by central differences.
  for (bool conj : {true, false}) {
    auto in = random_cauchy(conj, 41);
    Tensor w_re = ssm::testing::random({2, 3, 4}, DType::F64, 42);
    Tensor w_im = ssm::testing::random({2, 3, 4}, DType::F64, 43);
    auto loss = [&] {
      auto out = kernels::cpu::cauchy_fwd(in);
      double s = 0;
      auto a = out.re.to_vector(), b = out.im.to_vector(), wa = w_re.to_vector(),
           wb = w_im.to_vector();
      for (size_t i = 0; i < a.size(); ++i) s += wa[i] * a[i] + wb[i] * b[i];
      return s;
    };
    auto g = kernels::cpu::cauchy_bwd(in, w_re, w_im);
    const std::pair<Tensor*, Tensor*> pairs[] = {
        {&in.v_re, &g.v_re},           {&in.v_im, &g.v_im}, {&in.lambda_re, &g.lambda_re},
        {&in.lambda_im, &g.lambda_im}, {&in.z_re, &g.z_re}, {&in.z_im, &g.z_im}};
    for (auto [x, gx] : pairs) {
      Tensor numeric = Tensor::empty(x->shape(), DType::F64);
      double* px = x->data<double>();
      for (int64_t i = 0; i < x->numel(); ++i) {
        const double saved = px[i], eps = 1e-6;
        px[i] = saved + eps;
        const double plus = loss();
        px[i] = saved - eps;
        const double minus = loss();
        px[i] = saved;
        numeric.data<double>()[i] = (plus - minus) / (2 * eps);
      }
      EXPECT_LE(rel_error(*gx, numeric), 1e-7) << conj << " " << shape_str(x->shape());
    }
  }
}

TEST(Cauchy, RejectsBadInputs) {
  auto in = random_cauchy(true, 44);
  in.lambda_im = ssm::testing::random({2, 4});
  EXPECT_SSM_ERROR(kernels::cpu::check_cauchy_inputs(in, "cauchy"), "cauchy", "'lambda_im'",
                   "(2, 5)", "(2, 4)");
}

// ---- the S4 kernel ----

TEST(S4Kernel, IsTheImpulseResponseOfTheDenseBilinearDPLRSystem) {
  for (int64_t R : {1, 2}) {
    for (int64_t L : {1, 2, 7, 64, 101, 256}) {
      SCOPED_TRACE("R=" + std::to_string(R) + " L=" + std::to_string(L));
      S4Params p = make_params(3, 4, R, 50 + R);
      Tensor K = run(with_c_tilde(p, L), L);
      EXPECT_LE(rel_error(K, dense_impulse_response(p, L)), 1e-8);
    }
  }
}

TEST(S4Kernel, HippoLegSInitMatchesTheDenseSystem) {
  // The real use: Λ, P, B from the LegS decomposition, N = 32, a slowly decaying kernel.
  S4Params p = legs_params(2, 32, 51);
  const int64_t L = 1000;
  EXPECT_LE(rel_error(run(with_c_tilde(p, L), L), dense_impulse_response(p, L)), 1e-8);
}

TEST(S4Kernel, WithoutConversionTheKernelIsTheAliasedResponse) {
  // With C̃ = C the generating function is Σ_{l≥0} C Ā^l B̄ ω^l, so K_l = Σ_j h_{l + jL}.
  S4Params p = make_params(2, 3, 1, 52, 0.05, 0.2);
  const int64_t L = 16, periods = 200;
  Tensor h = dense_impulse_response(p, L * periods);
  Tensor aliased = Tensor::zeros({2, L}, DType::F64);
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t l = 0; l < L * periods; ++l)
      aliased.set({c, l % L}, aliased.at({c, l % L}) + h.at({c, l}));
  EXPECT_LE(rel_error(run(p, L), aliased), 1e-10);
}

TEST(S4Kernel, CTildeConversionsInvertEachOtherAndChangeTheLength) {
  S4Params p = make_params(2, 5, 2, 53);
  auto [tr, ti] =
      s4_c_tilde_from_c(p.log_dt, p.Lambda_re, p.Lambda_im, p.P_re, p.P_im, p.C_re, p.C_im, 64);
  auto [cr, ci] = s4_c_from_c_tilde(p.log_dt, p.Lambda_re, p.Lambda_im, p.P_re, p.P_im, tr, ti, 64);
  EXPECT_LE(rel_error(cr, p.C_re), 1e-10);
  EXPECT_LE(rel_error(ci, p.C_im), 1e-10);
  EXPECT_GT(rel_error(tr, p.C_re), 1e-3);  // the conversion does something
  // A C̃ trained at L = 64 moved to L = 200 gives the longer impulse response.
  auto [c2r, c2i] =
      s4_c_tilde_from_c(p.log_dt, p.Lambda_re, p.Lambda_im, p.P_re, p.P_im, cr, ci, 200);
  S4Params q = p;
  q.C_re = c2r;
  q.C_im = c2i;
  EXPECT_LE(rel_error(run(q, 200), dense_impulse_response(p, 200)), 1e-8);
  EXPECT_FALSE(c2r.requires_grad());
}

TEST(S4Kernel, GradcheckEveryInput) {
  for (int64_t R : {1, 2}) {
    for (int64_t L : {1, 2, 7, 16}) {
      SCOPED_TRACE("R=" + std::to_string(R) + " L=" + std::to_string(L));
      S4Params p = make_params(2, 3, R, 54 + L);
      {
        // Smaller P keeps I + r_{P*P} far from singular for the finite differences.
        NoGradGuard ng;
        for (Tensor* t : {&p.P_re, &p.P_im})
          for (int64_t i = 0; i < t->numel(); ++i) t->data<double>()[i] *= 0.5;
      }
      auto r = gradcheck(
          [&](const std::vector<Tensor>& in) {
            return s4_kernel(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8], L);
          },
          p.list());
      EXPECT_TRUE(r.ok) << r.report;
    }
  }
}

TEST(S4Kernel, Float32AgreesWithFloat64) {
  for (int64_t R : {1, 2}) {
    S4Params p64 = make_params(3, 8, R, 55);
    S4Params p32 = p64;
    for (Tensor* t : p32.ptrs()) *t = t->detach().to(DType::F32).requires_grad_();
    std::vector<Tensor*> a = p64.ptrs(), b = p32.ptrs();
    for (size_t i = 0; i < a.size(); ++i) *a[i] = b[i]->to(DType::F64).detach().requires_grad_();
    const int64_t L = 500;
    Tensor w = ssm::testing::random({3, L}, DType::F64, 56);
    Tensor K64 = run(p64, L), K32 = run(p32, L);
    EXPECT_LE(rel_error(K32, K64), 1e-5) << R;
    K64.backward(w);
    K32.backward(w.to(DType::F32));
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_LE(rel_error(b[i]->grad(), a[i]->grad()), 1e-5) << "R=" << R << " input " << i;
  }
}

TEST(S4Kernel, RejectsBadInputs) {
  S4Params p = make_params(2, 3, 1, 57);
  Tensor P3 = ssm::testing::random({3, 2, 3});
  EXPECT_SSM_ERROR(
      s4_kernel(p.log_dt, p.Lambda_re, p.Lambda_im, P3, P3, p.B_re, p.B_im, p.C_re, p.C_im, 8),
      "s4_kernel", "'P_re'", "R = 1 or 2", "(3, 2, 3)");
  Tensor bad = ssm::testing::random({2, 4});
  EXPECT_SSM_ERROR(
      s4_kernel(p.log_dt, p.Lambda_re, p.Lambda_im, p.P_re, p.P_im, p.B_re, p.B_im, bad, p.C_im, 8),
      "s4_kernel", "'C_re'", "(2, 3)", "(2, 4)");
  EXPECT_SSM_ERROR(s4_kernel(p.log_dt, p.Lambda_re, p.Lambda_im, p.P_re, p.P_im, p.B_re, p.B_im,
                             p.C_re, p.C_im, 0),
                   "s4_kernel", "'L'", ">= 1", "0");
  EXPECT_SSM_ERROR(s4_kernel(p.log_dt, p.Lambda_re, p.Lambda_im.detach().to(DType::F32), p.P_re,
                             p.P_im, p.B_re, p.B_im, p.C_re, p.C_im, 8),
                   "s4_kernel", "'Lambda_im'", "float64", "float32");
  EXPECT_SSM_ERROR(
      s4_c_tilde_from_c(p.log_dt, p.Lambda_re, p.Lambda_im, p.P_re, p.P_im, p.C_re, p.C_im, -2),
      "s4_c_tilde_from_c", "'L'", "-2");
}
