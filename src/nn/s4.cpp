// S4 (DPLR) layer: parameters, the convolution mode through ops/s4_kernel, and the dense
// float64 step mode.
//
// Step mode, per channel: the full complex system over N = 2·(N/2) coordinates (kept modes,
// then their conjugates) is A = diag(Λ, conj Λ) − Σ_r p_r p_r* with p_r = (P_r, conj P_r); it
// is discretised densely, Ā = (I − ΔA/2)⁻¹(I + ΔA/2), B̄ = (I − ΔA/2)⁻¹ΔB. Ā commutes with
// "conjugate and swap the halves", so a state that starts at zero under real inputs stays of
// the form (x, conj x): only x is carried, and its update
//   x' = Ā₁₁ x + Ā₁₂ conj(x) + B̄₁ u
// is a real-linear map of s = [Re x; Im x]:
//   M = [[Re Ā₁₁ + Re Ā₁₂, Im Ā₁₂ − Im Ā₁₁], [Im Ā₁₁ + Im Ā₁₂, Re Ā₁₁ − Re Ā₁₂]].
// The readout over the full basis is y = Re Σ C x = 2·Re(C₁ x) = 2 Re C·Re x − 2 Im C·Im x,
// with C recovered from C̃ at l_max.
#include "ssm/nn/s4.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>
#include <vector>

#include "ssm/autograd/node.h"
#include "ssm/nn/hippo.h"
#include "ssm/ops/conv.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/s4_kernel.h"
#include "ssm/ops/shape_ops.h"

namespace ssm::nn {

namespace {

// Re Λ at initialisation is kept ≤ this: Re Λ = −exp(·) cannot be 0 (HiPPO-LegT's Λ is
// purely imaginary; its low-rank term is what makes A dissipative).
constexpr double kMaxInitLambdaRe = -1e-4;

Tensor f64(const Tensor& t) {
  return t.detach().to(DType::F64).contiguous();
}

// The parameters that define the dynamics, as detached float64 tensors (Re Λ already formed).
struct Dynamics {
  Tensor log_dt, lambda_re, lambda_im, P_re, P_im, B_re, B_im;
};

Dynamics dynamics_f64(const S4& m) {
  NoGradGuard no_grad;
  return {f64(m.log_dt),    neg(exp(f64(m.Lambda_re_log))),
          f64(m.Lambda_im), f64(m.P_re),
          f64(m.P_im),      f64(m.B_re),
          f64(m.B_im)};
}

// C̃ for kernel length `from` re-expressed for length `to` (float64).
std::pair<Tensor, Tensor> convert_c_tilde(const Dynamics& d, const Tensor& c_re, const Tensor& c_im,
                                          int64_t from, int64_t to) {
  NoGradGuard no_grad;
  auto [re, im] = s4_c_from_c_tilde(d.log_dt, d.lambda_re, d.lambda_im, d.P_re, d.P_im, f64(c_re),
                                    f64(c_im), from);
  return s4_c_tilde_from_c(d.log_dt, d.lambda_re, d.lambda_im, d.P_re, d.P_im, re, im, to);
}

}  // namespace

S4::S4(const S4Options& o, Generator& gen, DType dtype) : options(o) {
  SSM_CHECK(o.d_model > 0, "S4: d_model must be positive, got {}", o.d_model);
  SSM_CHECK(o.d_state > 0 && o.d_state % 2 == 0,
            "S4: d_state must be even (N/2 conjugate pairs), got {}", o.d_state);
  SSM_CHECK(o.l_max >= 1, "S4: l_max (the kernel length of C̃) must be ≥ 1, got {}", o.l_max);
  SSM_CHECK(o.init == "legs" || o.init == "legt",
            "S4: init expected 'legs' (rank 1) or 'legt' (rank 2), got '{}'", o.init);
  SSM_CHECK(o.dt_min > 0 && o.dt_min <= o.dt_max,
            "S4: expected 0 < dt_min ≤ dt_max, got dt_min {} and dt_max {}", o.dt_min, o.dt_max);
  const int64_t H = o.d_model, M = o.d_state / 2;
  const DPLR dplr = hippo_dplr(hippo_measure_from_name(o.init), o.d_state);
  const int64_t R = dplr.rank;
  Tensor a_re_log = Tensor::empty({H, M}, DType::F64), a_im = Tensor::empty({H, M}, DType::F64);
  Tensor b_re = Tensor::empty({H, M}, DType::F64), b_im = Tensor::empty({H, M}, DType::F64);
  Tensor p_re = Tensor::empty({R, H, M}, DType::F64), p_im = Tensor::empty({R, H, M}, DType::F64);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t n = 0; n < M; ++n) {
      a_re_log.set({h, n}, std::log(-std::min(dplr.lambda[n].real(), kMaxInitLambdaRe)));
      a_im.set({h, n}, dplr.lambda[n].imag());
      b_re.set({h, n}, dplr.B[n].real());
      b_im.set({h, n}, dplr.B[n].imag());
      for (int64_t r = 0; r < R; ++r) {
        p_re.set({r, h, n}, dplr.P[r * M + n].real());
        p_im.set({r, h, n}, dplr.P[r * M + n].imag());
      }
    }
  log_dt = register_parameter(
      "log_dt", rand_uniform({H}, std::log(o.dt_min), std::log(o.dt_max), dtype, &gen),
      ParamKind::SSM);
  Lambda_re_log = register_parameter("Lambda_re_log", a_re_log.to(dtype), ParamKind::SSM);
  Lambda_im = register_parameter("Lambda_im", a_im.to(dtype), ParamKind::SSM);
  P_re = register_parameter("P_re", p_re.to(dtype), ParamKind::SSM);
  P_im = register_parameter("P_im", p_im.to(dtype), ParamKind::SSM);
  B_re = register_parameter("B_re", b_re.to(dtype), ParamKind::SSM);
  B_im = register_parameter("B_im", b_im.to(dtype), ParamKind::SSM);
  // C ~ complex standard normal (variance ½ per part), stored as C̃ = C(I − Ā^l_max).
  const Dynamics d = dynamics_f64(*this);
  auto sample_c_tilde = [&] {
    const Tensor c_re = mul_scalar(randn({H, M}, DType::F64, &gen), std::sqrt(0.5));
    const Tensor c_im = mul_scalar(randn({H, M}, DType::F64, &gen), std::sqrt(0.5));
    return s4_c_tilde_from_c(d.log_dt, d.lambda_re, d.lambda_im, d.P_re, d.P_im, c_re, c_im,
                             o.l_max);
  };
  auto [ct_re, ct_im] = sample_c_tilde();
  C_re = register_parameter("C_re", ct_re.to(dtype), ParamKind::Weight);
  C_im = register_parameter("C_im", ct_im.to(dtype), ParamKind::Weight);
  D = register_parameter("D", randn({H}, dtype, &gen), ParamKind::Weight);
  if (o.bidirectional) {
    auto [cb_re, cb_im] = sample_c_tilde();
    C_re_bwd = register_parameter("C_re_bwd", cb_re.to(dtype), ParamKind::Weight);
    C_im_bwd = register_parameter("C_im_bwd", cb_im.to(dtype), ParamKind::Weight);
  }
}

Tensor S4::Lambda_re() const {
  return neg(exp(Lambda_re_log));
}

namespace {

Tensor kernel_for(const S4& m, const Tensor& c_re, const Tensor& c_im, int64_t L,
                  const char* what) {
  SSM_CHECK(L >= 1, "S4::{}: argument 'L' expected ≥ 1, got {}", what, L);
  const int64_t l_max = m.options.l_max;
  if (L <= l_max) {
    const Tensor K = s4_kernel(m.log_dt, m.Lambda_re(), m.Lambda_im, m.P_re, m.P_im, m.B_re, m.B_im,
                               c_re, c_im, l_max);
    // The first L taps of the l_max kernel are exactly the length-L kernel.
    return L == l_max ? K : K.narrow(1, 0, L).contiguous();
  }
  SSM_CHECK(!needs_grad(m.parameters()),
            "S4::{}: sequence length {} exceeds l_max {}, and C̃ cannot be converted to a new "
            "length differentiably; call change_kernel_length({}) before training at this length, "
            "or run without gradients (NoGradGuard)",
            what, L, l_max, L);
  const Dynamics d = dynamics_f64(m);
  auto [re, im] = convert_c_tilde(d, c_re, c_im, l_max, L);
  return s4_kernel(m.log_dt, m.Lambda_re(), m.Lambda_im, m.P_re, m.P_im, m.B_re, m.B_im,
                   re.to(c_re.dtype()), im.to(c_re.dtype()), L);
}

}  // namespace

Tensor S4::kernel(int64_t L) const {
  return kernel_for(*this, C_re, C_im, L, "kernel");
}

Tensor S4::backward_kernel(int64_t L) const {
  SSM_CHECK(options.bidirectional, "S4::backward_kernel: the layer is not bidirectional");
  return kernel_for(*this, C_re_bwd, C_im_bwd, L, "backward_kernel");
}

void S4::change_kernel_length(int64_t L) {
  SSM_CHECK(L >= 1, "S4::change_kernel_length: argument 'L' expected ≥ 1, got {}", L);
  if (L == options.l_max) return;
  NoGradGuard no_grad;
  const Dynamics d = dynamics_f64(*this);
  auto move = [&](Tensor& re, Tensor& im) {
    auto [new_re, new_im] = convert_c_tilde(d, re, im, options.l_max, L);
    re.copy_(new_re);
    im.copy_(new_im);
  };
  move(C_re, C_im);
  if (options.bidirectional) move(C_re_bwd, C_im_bwd);
  options.l_max = L;
}

Tensor S4::forward(const Tensor& x) const {
  SSM_CHECK(x.defined() && x.dim() == 3 && x.size(2) == options.d_model,
            "S4: argument 'x' expected shape (B, L, {}), got {}", options.d_model,
            x.defined() ? shape_str(x.shape()) : "an undefined tensor");
  SSM_CHECK(x.dtype() == D.dtype(), "S4: argument 'x' expected dtype {} (the parameters'), got {}",
            dtype_name(D.dtype()), dtype_name(x.dtype()));
  const int64_t L = x.size(1);
  Tensor u = x.transpose(1, 2).contiguous();  // (B, H, L)
  // The D·u feed-through is fused into the convolution (one op, no extra passes over u).
  Tensor y = fft_conv(u, kernel(L), D);
  if (options.bidirectional) {
    // w = K_bwd * flip(u); shifting w right by one and flipping back gives
    // y_l = Σ_{j>l} K_bwd[j−l−1] u_j: the strictly-future part of the kernel.
    Tensor w = fft_conv(u.flip(2).contiguous(), backward_kernel(L));
    Tensor zero = Tensor::zeros({u.size(0), u.size(1), 1}, u.dtype());
    Tensor shifted = concat({zero, w.narrow(2, 0, L - 1)}, 2);
    y = add(y, shifted.flip(2));
  }
  return y.transpose(1, 2);
}

S4State S4::init_state(int64_t batch) const {
  SSM_CHECK(!options.bidirectional,
            "S4: a bidirectional layer reads future inputs and has no recurrent (step) mode");
  SSM_CHECK(batch > 0, "S4::init_state: batch must be positive, got {}", batch);
  using Eigen::MatrixXcd;
  using Eigen::VectorXcd;
  const int64_t H = options.d_model, M = options.d_state / 2, N = options.d_state, R = rank();
  const Dynamics d = dynamics_f64(*this);
  Tensor c_re, c_im;
  {
    NoGradGuard no_grad;
    std::tie(c_re, c_im) = s4_c_from_c_tilde(d.log_dt, d.lambda_re, d.lambda_im, d.P_re, d.P_im,
                                             f64(C_re), f64(C_im), options.l_max);
  }
  S4State s;
  s.s = Tensor::zeros({batch, H, N}, DType::F64);
  s.M_t = Tensor::empty({H, N, N}, DType::F64);
  s.b = Tensor::empty({H, N}, DType::F64);
  s.c = Tensor::empty({H, N}, DType::F64);
  s.d = f64(D);
  const double *lr = d.lambda_re.data<double>(), *li = d.lambda_im.data<double>();
  const double *pr = d.P_re.data<double>(), *pi = d.P_im.data<double>();
  const double *br = d.B_re.data<double>(), *bi = d.B_im.data<double>();
  const double *cr = c_re.data<double>(), *ci = c_im.data<double>();
#pragma omp parallel for schedule(dynamic) if (H * N * N * N >= (1 << 18))
  for (int64_t h = 0; h < H; ++h) {
    MatrixXcd A = MatrixXcd::Zero(N, N);
    VectorXcd B(N);
    for (int64_t n = 0; n < M; ++n) {
      A(n, n) = complexd(lr[h * M + n], li[h * M + n]);
      A(M + n, M + n) = std::conj(A(n, n));
      B(n) = complexd(br[h * M + n], bi[h * M + n]);
      B(M + n) = std::conj(B(n));
    }
    for (int64_t r = 0; r < R; ++r) {
      VectorXcd p(N);
      for (int64_t n = 0; n < M; ++n) {
        p(n) = complexd(pr[(r * H + h) * M + n], pi[(r * H + h) * M + n]);
        p(M + n) = std::conj(p(n));
      }
      A -= p * p.adjoint();
    }
    const double dt = std::exp(d.log_dt.data<double>()[h]);
    const MatrixXcd I = MatrixXcd::Identity(N, N);
    const auto lu = (I - 0.5 * dt * A).partialPivLu();
    const MatrixXcd A_bar = lu.solve(I + 0.5 * dt * A);
    const VectorXcd B_bar = lu.solve(dt * B);
    // Stored transposed: Mt[j * N + i] = M_ij.
    double* Mt = s.M_t.data<double>() + h * N * N;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < M; ++j) {
        const complexd a11 = A_bar(i, j), a12 = A_bar(i, M + j);
        Mt[j * N + i] = a11.real() + a12.real();
        Mt[(M + j) * N + i] = a12.imag() - a11.imag();
        Mt[j * N + M + i] = a11.imag() + a12.imag();
        Mt[(M + j) * N + M + i] = a11.real() - a12.real();
      }
    for (int64_t n = 0; n < M; ++n) {
      s.b.data<double>()[h * N + n] = B_bar(n).real();
      s.b.data<double>()[h * N + M + n] = B_bar(n).imag();
      s.c.data<double>()[h * N + n] = 2 * cr[h * M + n];
      s.c.data<double>()[h * N + M + n] = -2 * ci[h * M + n];
    }
  }
  return s;
}

Tensor S4::step(const Tensor& x_t, S4State& st) const {
  const int64_t H = options.d_model, N = options.d_state;
  SSM_CHECK(x_t.defined() && x_t.dim() == 2 && x_t.size(1) == H,
            "S4::step: argument 'x_t' expected shape (B, {}), got {}", H,
            x_t.defined() ? shape_str(x_t.shape()) : "an undefined tensor");
  const int64_t Bsz = x_t.size(0);
  SSM_CHECK(st.s.defined() && st.s.size(0) == Bsz,
            "S4::step: argument 'state' was made for batch {}, x_t has batch {}",
            st.s.defined() ? st.s.size(0) : 0, Bsz);
  const Tensor u = x_t.to(DType::F64).contiguous();
  Tensor y = Tensor::empty({Bsz, H}, DType::F64);
  const double *Mp = st.M_t.data<double>(), *bp = st.b.data<double>(), *cp = st.c.data<double>();
  const double *dp = st.d.data<double>(), *pu = u.data<double>();
  double *sp = st.s.data<double>(), *py = y.data<double>();
  // h outer, so one channel's M stays in cache across the batch; s' = b·u + Σ_j M[:, j] s_j is
  // a sum of contiguous columns (the SIMD loop runs over i, no horizontal reductions).
#pragma omp parallel if (Bsz * H * N * N >= (1 << 16))
  {
    std::vector<double> next(N);
#pragma omp for schedule(static)
    for (int64_t hb = 0; hb < H * Bsz; ++hb) {
      const int64_t h = hb / Bsz, bh = (hb % Bsz) * H + h;
      const double uv = pu[bh];
      double* __restrict s = sp + bh * N;
      double* __restrict nx = next.data();
      const double* __restrict Mt = Mp + h * N * N;
      const double* __restrict bv = bp + h * N;
      for (int64_t i = 0; i < N; ++i) nx[i] = bv[i] * uv;
      for (int64_t j = 0; j < N; ++j) {
        const double sj = s[j];
        const double* __restrict col = Mt + j * N;
        for (int64_t i = 0; i < N; ++i) nx[i] += col[i] * sj;
      }
      double out = dp[h] * uv;
      for (int64_t i = 0; i < N; ++i) {
        s[i] = nx[i];
        out += cp[h * N + i] * nx[i];
      }
      py[bh] = out;
    }
  }
  return y.to(x_t.dtype());
}

}  // namespace ssm::nn
