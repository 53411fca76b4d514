// s5_scan and s5_discretize_zoh ops: checks, kernels, and hand-written backward rules.
//
// Discretisation backward, per mode p (gradients of complex values as ∂ℒ/∂Re + i·∂ℒ/∂Im, so a
// holomorphic w(Λ) passes conj(dw/dΛ)·g_w back to Λ, and a real Δ receives Re(conj(dw/dΔ)·g_w)):
//   u = ΔΛ,  z = Λ̄ = e^u,  f = (e^u − 1)/Λ,  B̄_h = f·B_h
//   ∂ℒ/∂B_h = conj(f)·g_{B̄_h},   g_f = Σ_h conj(B_h)·g_{B̄_h}
//   dz/dΛ = Δz,  dz/dΔ = Λz,  df/dΔ = z,  df/dΛ = (u e^u − (e^u − 1))/Λ² = Δ²·φ(u),
//   φ(u) = (u e^u − e^u + 1)/u² = Σ_{k≥0} (k+1)/(k+2)!·u^k   (the series where |u| is small:
//   the closed form cancels to u²/2 there)
//   ∂ℒ/∂Λ = conj(Δz)·g_z + conj(Δ²φ(u))·g_f,   ∂ℒ/∂log Δ = Δ·Re(conj(Λz)·g_z + conj(z)·g_f).
#include "ssm/ops/s5_scan.h"

#include <cmath>
#include <complex>

#include "ssm/autograd/node.h"
#include "ssm/kernels/s5_scan.h"

namespace ssm {

namespace {

using complexd = std::complex<double>;

// e^u − 1 without cancellation when |u| is small.
complexd cexpm1(complexd u) {
  const double em1 = std::expm1(u.real()), half_sin = std::sin(0.5 * u.imag());
  return {em1 * std::cos(u.imag()) - 2 * half_sin * half_sin, (em1 + 1) * std::sin(u.imag())};
}

// φ(u) = (u e^u − e^u + 1)/u², the derivative of (e^u − 1)/u.
complexd phi(complexd u) {
  if (std::abs(u) < 0.5) {
    // Σ (k+1)/(k+2)! u^k; 20 terms leave < 0.5^20/22! of the sum.
    complexd sum = 0, power = 1;
    double factorial = 2;  // (k+2)!
    for (int k = 0; k < 20; ++k) {
      sum += (k + 1) / factorial * power;
      power *= u;
      factorial *= k + 3;
    }
    return sum;
  }
  return (u * std::exp(u) - cexpm1(u)) / (u * u);
}

void expect_shape(const Tensor& t, const Shape& expected, const char* layout, const char* arg) {
  SSM_CHECK(t.defined(), "s5_discretize_zoh: argument '{}' is undefined", arg);
  SSM_CHECK(t.shape() == expected,
            "s5_discretize_zoh: argument '{}' expected shape {} = {}, got {}", arg, layout,
            shape_str(expected), shape_str(t.shape()));
}

struct DiscretizeInputs {
  Tensor log_dt, lambda_re, lambda_im, B_re, B_im;  // float64, contiguous, detached
};

}  // namespace

std::array<Tensor, 2> s5_scan(const Tensor& a_re, const Tensor& a_im, const Tensor& bu_re,
                              const Tensor& bu_im, bool reverse, int64_t chunk_len) {
  kernels::cpu::check_s5_scan_inputs(a_re, a_im, bu_re, bu_im, chunk_len, "s5_scan");
  // Detached contiguous copies: the kernel reads raw pointers, and the backward closure must
  // not keep the inputs' history alive.
  const Tensor ar = a_re.contiguous().detach(), ai = a_im.contiguous().detach();
  auto r = kernels::cpu::s5_scan_fwd(ar, ai, bu_re.contiguous().detach(),
                                     bu_im.contiguous().detach(), reverse, chunk_len);
  const Tensor xr = r.x_re.detach(), xi = r.x_im.detach();
  auto out = record("s5_scan", {r.x_re, r.x_im}, {a_re, a_im, bu_re, bu_im},
                    [ar, ai, xr, xi, reverse, chunk_len](const std::vector<Tensor>& grads) {
                      const Tensor gr = grads[0].to(xr.dtype()).contiguous();
                      const Tensor gi = grads[1].to(xr.dtype()).contiguous();
                      auto g =
                          kernels::cpu::s5_scan_bwd(ar, ai, xr, xi, gr, gi, reverse, chunk_len);
                      return std::vector<Tensor>{g.a_re, g.a_im, g.b_re, g.b_im};
                    });
  return {out[0], out[1]};
}

std::array<Tensor, 4> s5_discretize_zoh(const Tensor& log_dt, const Tensor& Lambda_re,
                                        const Tensor& Lambda_im, const Tensor& B_re,
                                        const Tensor& B_im) {
  SSM_CHECK(B_re.defined() && B_re.dim() == 2,
            "s5_discretize_zoh: argument 'B_re' expected shape (P, H), got {}",
            B_re.defined() ? shape_str(B_re.shape()) : "an undefined tensor");
  const int64_t P = B_re.size(0), H = B_re.size(1);
  expect_shape(log_dt, {P}, "(P)", "log_dt");
  expect_shape(Lambda_re, {P}, "(P)", "Lambda_re");
  expect_shape(Lambda_im, {P}, "(P)", "Lambda_im");
  expect_shape(B_im, {P, H}, "(P, H)", "B_im");
  const DType dtype = B_re.dtype();
  SSM_CHECK(is_floating(dtype),
            "s5_discretize_zoh: argument 'B_re' expected float32 or float64, got {}",
            dtype_name(dtype));
  const std::pair<const Tensor*, const char*> others[] = {
      {&log_dt, "log_dt"}, {&Lambda_re, "Lambda_re"}, {&Lambda_im, "Lambda_im"}, {&B_im, "B_im"}};
  for (auto [t, name] : others)
    SSM_CHECK(t->dtype() == dtype,
              "s5_discretize_zoh: argument '{}' expected dtype {} (the dtype of B_re), got {}",
              name, dtype_name(dtype), dtype_name(t->dtype()));

  auto f64 = [](const Tensor& t) { return t.detach().to(DType::F64).contiguous(); };
  const DiscretizeInputs in{f64(log_dt), f64(Lambda_re), f64(Lambda_im), f64(B_re), f64(B_im)};
  const double *ld = in.log_dt.data<double>(), *lr = in.lambda_re.data<double>(),
               *li = in.lambda_im.data<double>(), *br = in.B_re.data<double>(),
               *bi = in.B_im.data<double>();
  Tensor z_re = Tensor::empty({P}, DType::F64), z_im = Tensor::empty({P}, DType::F64);
  Tensor bb_re = Tensor::empty({P, H}, DType::F64), bb_im = Tensor::empty({P, H}, DType::F64);
  for (int64_t p = 0; p < P; ++p) {
    const complexd lambda(lr[p], li[p]);
    SSM_CHECK(lambda != 0.0, "s5_discretize_zoh: argument 'Lambda' is 0 at mode {}", p);
    const double dt = std::exp(ld[p]);
    const complexd z = std::exp(dt * lambda), f = cexpm1(dt * lambda) / lambda;
    z_re.data<double>()[p] = z.real();
    z_im.data<double>()[p] = z.imag();
    for (int64_t h = 0; h < H; ++h) {
      const complexd bbar = f * complexd(br[p * H + h], bi[p * H + h]);
      bb_re.data<double>()[p * H + h] = bbar.real();
      bb_im.data<double>()[p * H + h] = bbar.imag();
    }
  }
  auto out = record(
      "s5_discretize_zoh", {z_re.to(dtype), z_im.to(dtype), bb_re.to(dtype), bb_im.to(dtype)},
      {log_dt, Lambda_re, Lambda_im, B_re, B_im}, [in, dtype](const std::vector<Tensor>& grads) {
        const int64_t P = in.B_re.size(0), H = in.B_re.size(1);
        auto g64 = [](const Tensor& g) { return g.to(DType::F64).contiguous(); };
        const Tensor gz_re = g64(grads[0]), gz_im = g64(grads[1]), gb_re = g64(grads[2]),
                     gb_im = g64(grads[3]);
        Tensor d_ld = Tensor::empty({P}, DType::F64), d_lr = Tensor::empty({P}, DType::F64),
               d_li = Tensor::empty({P}, DType::F64), d_br = Tensor::empty({P, H}, DType::F64),
               d_bi = Tensor::empty({P, H}, DType::F64);
        for (int64_t p = 0; p < P; ++p) {
          const complexd lambda(in.lambda_re.data<double>()[p], in.lambda_im.data<double>()[p]);
          const double dt = std::exp(in.log_dt.data<double>()[p]);
          const complexd u = dt * lambda, z = std::exp(u), f = cexpm1(u) / lambda;
          const complexd gz(gz_re.data<double>()[p], gz_im.data<double>()[p]);
          complexd gf = 0;
          for (int64_t h = 0; h < H; ++h) {
            const int64_t i = p * H + h;
            const complexd gb(gb_re.data<double>()[i], gb_im.data<double>()[i]);
            const complexd B(in.B_re.data<double>()[i], in.B_im.data<double>()[i]);
            const complexd dB = std::conj(f) * gb;
            d_br.data<double>()[i] = dB.real();
            d_bi.data<double>()[i] = dB.imag();
            gf += std::conj(B) * gb;
          }
          const complexd d_lambda = std::conj(dt * z) * gz + std::conj(dt * dt * phi(u)) * gf;
          const double d_dt = (std::conj(lambda * z) * gz + std::conj(z) * gf).real();
          d_lr.data<double>()[p] = d_lambda.real();
          d_li.data<double>()[p] = d_lambda.imag();
          d_ld.data<double>()[p] = dt * d_dt;
        }
        return std::vector<Tensor>{d_ld.to(dtype), d_lr.to(dtype), d_li.to(dtype), d_br.to(dtype),
                                   d_bi.to(dtype)};
      });
  return {out[0], out[1], out[2], out[3]};
}

}  // namespace ssm
