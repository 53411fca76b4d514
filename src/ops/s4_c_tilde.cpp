// C̃ = C(I − Ā^L) and its inverse for the S4 (DPLR) kernel (see include/ssm/ops/s4_kernel.h).
//
// Dense and in float64: per channel the full 2·(N/2)-dimensional complex system is built in the
// diagonal basis, A = diag(Λ, conj Λ) − Σ_r p_r p_r* with p_r = (P_r, conj P_r), discretised
// bilinearly, and Ā^L is formed by repeated squaring. C acts as a row vector on the state
// (y = Re Σ C_n x_n over the full basis), so C̃ = C(I − Ā^L), i.e. C̃ᵀ = (I − Ā^L)ᵀ Cᵀ.
// Ā commutes with "conjugate and swap the halves", so C̃ keeps the conjugate-pair layout and
// only its first half is returned. Used at initialisation and to change the kernel length.
#include <Eigen/Dense>
#include <cmath>
#include <complex>

#include "ops/s4_inputs.h"
#include "ssm/autograd/node.h"
#include "ssm/ops/s4_kernel.h"

namespace ssm {

namespace {

using complexd = std::complex<double>;
using Eigen::MatrixXcd;
using Eigen::VectorXcd;

// I − Ā^L of channel h, from float64 copies of the parameters.
MatrixXcd one_minus_power(const detail::S4Params& p, int64_t h, int64_t L) {
  const int64_t H = p.log_dt.size(0), half = p.Lambda_re.size(1), N = 2 * half;
  const int64_t R = p.P_re.size(0);
  const double* lr = p.Lambda_re.data<double>() + h * half;
  const double* li = p.Lambda_im.data<double>() + h * half;
  MatrixXcd A = MatrixXcd::Zero(N, N);
  for (int64_t n = 0; n < half; ++n) {
    A(n, n) = complexd(lr[n], li[n]);
    A(half + n, half + n) = complexd(lr[n], -li[n]);
  }
  for (int64_t r = 0; r < R; ++r) {
    VectorXcd pr(N);
    for (int64_t n = 0; n < half; ++n) {
      const int64_t i = (r * H + h) * half + n;
      pr(n) = complexd(p.P_re.data<double>()[i], p.P_im.data<double>()[i]);
      pr(half + n) = std::conj(pr(n));
    }
    A -= pr * pr.adjoint();
  }
  const double dt = std::exp(p.log_dt.data<double>()[h]);
  const MatrixXcd I = MatrixXcd::Identity(N, N);
  const MatrixXcd A_bar = (I - 0.5 * dt * A).partialPivLu().solve(I + 0.5 * dt * A);
  MatrixXcd power = I, base = A_bar;
  for (int64_t e = L; e > 0; e >>= 1) {
    if (e & 1) power = power * base;
    if (e > 1) base = base * base;
  }
  return I - power;
}

std::pair<Tensor, Tensor> convert(const Tensor& log_dt, const Tensor& Lambda_re,
                                  const Tensor& Lambda_im, const Tensor& P_re, const Tensor& P_im,
                                  const Tensor& C_re, const Tensor& C_im, int64_t L, bool to_tilde,
                                  const char* op) {
  const detail::S4Params raw{log_dt,   Lambda_re, Lambda_im, P_re, P_im,
                             Tensor(), Tensor(),  C_re,      C_im};
  detail::check_s4_params(raw, L, op);
  NoGradGuard no_grad;
  auto f64 = [](const Tensor& t) { return t.detach().to(DType::F64).contiguous(); };
  const detail::S4Params p{f64(log_dt), f64(Lambda_re), f64(Lambda_im), f64(P_re), f64(P_im),
                           Tensor(),    Tensor(),       f64(C_re),      f64(C_im)};
  const int64_t H = log_dt.size(0), half = Lambda_re.size(1), N = 2 * half;
  Tensor out_re = Tensor::empty({H, half}, DType::F64),
         out_im = Tensor::empty({H, half}, DType::F64);
#pragma omp parallel for schedule(dynamic) if (H * N * N * N >= (1 << 18))
  for (int64_t h = 0; h < H; ++h) {
    VectorXcd c(N);
    for (int64_t n = 0; n < half; ++n) {
      c(n) = complexd(p.C_re.data<double>()[h * half + n], p.C_im.data<double>()[h * half + n]);
      c(half + n) = std::conj(c(n));
    }
    const MatrixXcd Mt = one_minus_power(p, h, L).transpose();
    const VectorXcd result = to_tilde ? VectorXcd(Mt * c) : VectorXcd(Mt.partialPivLu().solve(c));
    for (int64_t n = 0; n < half; ++n) {
      out_re.data<double>()[h * half + n] = result(n).real();
      out_im.data<double>()[h * half + n] = result(n).imag();
    }
  }
  return {out_re.to(log_dt.dtype()), out_im.to(log_dt.dtype())};
}

}  // namespace

std::pair<Tensor, Tensor> s4_c_tilde_from_c(const Tensor& log_dt, const Tensor& Lambda_re,
                                            const Tensor& Lambda_im, const Tensor& P_re,
                                            const Tensor& P_im, const Tensor& C_re,
                                            const Tensor& C_im, int64_t L) {
  return convert(log_dt, Lambda_re, Lambda_im, P_re, P_im, C_re, C_im, L, /*to_tilde=*/true,
                 "s4_c_tilde_from_c");
}

std::pair<Tensor, Tensor> s4_c_from_c_tilde(const Tensor& log_dt, const Tensor& Lambda_re,
                                            const Tensor& Lambda_im, const Tensor& P_re,
                                            const Tensor& P_im, const Tensor& C_re,
                                            const Tensor& C_im, int64_t L) {
  return convert(log_dt, Lambda_re, Lambda_im, P_re, P_im, C_re, C_im, L,
                 /*to_tilde=*/false, "s4_c_from_c_tilde");
}

}  // namespace ssm
