#include "ssm/nn/s4d.h"

#include <cmath>
#include <complex>

#include "ssm/autograd/node.h"
#include "ssm/nn/hippo.h"
#include "ssm/ops/conv.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/shape_ops.h"

namespace ssm::nn {

S4D::S4D(const S4DOptions& o, Generator& gen, DType dtype) : options(o) {
  SSM_CHECK(o.d_model > 0, "S4D: d_model must be positive, got {}", o.d_model);
  SSM_CHECK(o.d_state > 0 && o.d_state % 2 == 0,
            "S4D: d_state must be even (N/2 conjugate pairs), got {}", o.d_state);
  const int64_t H = o.d_model, M = o.d_state / 2;
  const S4DInit kind = s4d_init_from_name(o.init);
  const bool ptd = kind == S4DInit::LegSPTD;
  // legs-ptd draws E's seed from gen first (only then: the other inits' draws are unchanged).
  const DiagonalInit init =
      ptd ? s4d_init(kind, o.d_state, o.ptd_norm, gen.next_u64()) : s4d_init(kind, o.d_state);
  Tensor a_re_log = Tensor::empty({H, M}, DType::F64), a_im = Tensor::empty({H, M}, DType::F64);
  Tensor b_re = Tensor::empty({H, M}, DType::F64), b_im = Tensor::empty({H, M}, DType::F64);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t n = 0; n < M; ++n) {
      a_re_log.set({h, n}, std::log(-init.A[n].real()));
      a_im.set({h, n}, init.A[n].imag());
      b_re.set({h, n}, init.B[n].real());
      b_im.set({h, n}, init.B[n].imag());
    }
  // C ~ complex standard normal (variance ½ per part); log Δ ~ U[log dt_min, log dt_max].
  // legs-ptd: C̃ = C·V_h for a real C ~ N(0, 1) (n entries per channel), so that the modes'
  // large B̃ = V⁻¹B cancel as they do in the dense system (E|C̃ₙ|² = 1 as above).
  Tensor c_re, c_im;
  if (ptd) {
    const int64_t n = static_cast<int64_t>(init.V.size()) / M;
    const Tensor c_real = randn({H, n}, DType::F64, &gen);
    c_re = Tensor::zeros({H, M}, DType::F64);
    c_im = Tensor::zeros({H, M}, DType::F64);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t m = 0; m < M; ++m) {
        complexd s = 0;
        for (int64_t i = 0; i < n; ++i) s += c_real.data<double>()[h * n + i] * init.V[i * M + m];
        c_re.data<double>()[h * M + m] = s.real();
        c_im.data<double>()[h * M + m] = s.imag();
      }
    c_re = c_re.to(dtype);
    c_im = c_im.to(dtype);
  } else {
    c_re = mul_scalar(randn({H, M}, dtype, &gen), std::sqrt(0.5));
    c_im = mul_scalar(randn({H, M}, dtype, &gen), std::sqrt(0.5));
  }
  log_dt = register_parameter(
      "log_dt", rand_uniform({H}, std::log(o.dt_min), std::log(o.dt_max), dtype, &gen),
      ParamKind::SSM);
  A_re_log = register_parameter("A_re_log", a_re_log.to(dtype), ParamKind::SSM);
  A_im = register_parameter("A_im", a_im.to(dtype), ParamKind::SSM);
  B_re = register_parameter("B_re", b_re.to(dtype), ParamKind::SSM);
  B_im = register_parameter("B_im", b_im.to(dtype), ParamKind::SSM);
  C_re = register_parameter("C_re", c_re.detach(), ParamKind::Weight);
  C_im = register_parameter("C_im", c_im.detach(), ParamKind::Weight);
  D = register_parameter("D", randn({H}, dtype, &gen), ParamKind::Weight);
  if (o.bidirectional) {
    C_re_bwd = register_parameter("C_re_bwd",
                                  mul_scalar(randn({H, M}, dtype, &gen), std::sqrt(0.5)).detach());
    C_im_bwd = register_parameter("C_im_bwd",
                                  mul_scalar(randn({H, M}, dtype, &gen), std::sqrt(0.5)).detach());
  }
}

Tensor S4D::kernel(int64_t L) const {
  return s4d_kernel(log_dt, A_re_log, A_im, B_re, B_im, C_re, C_im, L, options.discretization);
}

Tensor S4D::backward_kernel(int64_t L) const {
  SSM_CHECK(options.bidirectional, "S4D::backward_kernel: the layer is not bidirectional");
  return s4d_kernel(log_dt, A_re_log, A_im, B_re, B_im, C_re_bwd, C_im_bwd, L,
                    options.discretization);
}

Tensor S4D::forward(const Tensor& x) const {
  SSM_CHECK(x.dim() == 3 && x.size(2) == options.d_model, "S4D: input must be (B, L, {}), got {}",
            options.d_model, shape_str(x.shape()));
  SSM_CHECK(x.dtype() == D.dtype(), "S4D: input is {}, the layer's parameters are {}",
            dtype_name(x.dtype()), dtype_name(D.dtype()));
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

S4DState S4D::init_state(int64_t batch) const {
  SSM_CHECK(!options.bidirectional,
            "S4D: a bidirectional layer reads future inputs and has no recurrent (step) mode");
  SSM_CHECK(batch > 0, "S4D::init_state: batch must be positive, got {}", batch);
  const int64_t H = options.d_model, M = options.d_state / 2;
  S4DState s;
  s.x_re = Tensor::zeros({batch, H, M}, DType::F64);
  s.x_im = Tensor::zeros({batch, H, M}, DType::F64);
  s.a_re = Tensor::empty({H, M}, DType::F64);
  s.a_im = Tensor::empty({H, M}, DType::F64);
  s.bc_re = Tensor::empty({H, M}, DType::F64);
  s.bc_im = Tensor::empty({H, M}, DType::F64);
  // Discretise in float64 once: with s = x / B̄ the recurrence is s ← Ā s + u, y = 2·Re Σ (C B̄) s.
  const auto ldt = log_dt.to_vector(), are = A_re_log.to_vector(), aim = A_im.to_vector(),
             bre = B_re.to_vector(), bim = B_im.to_vector(), cre = C_re.to_vector(),
             cim = C_im.to_vector();
  for (int64_t h = 0; h < H; ++h) {
    const double dt = std::exp(ldt[h]);
    for (int64_t n = 0; n < M; ++n) {
      const int64_t i = h * M + n;
      const std::complex<double> A(-std::exp(are[i]), aim[i]), B(bre[i], bim[i]), C(cre[i], cim[i]);
      std::complex<double> abar, bbar;
      if (options.discretization == Discretization::ZOH) {
        abar = std::exp(dt * A);
        bbar = B * (abar - 1.0) / A;
      } else {
        abar = (1.0 + dt * A / 2.0) / (1.0 - dt * A / 2.0);
        bbar = dt * B / (1.0 - dt * A / 2.0);
      }
      const std::complex<double> cb = C * bbar;
      s.a_re.data<double>()[i] = abar.real();
      s.a_im.data<double>()[i] = abar.imag();
      s.bc_re.data<double>()[i] = cb.real();
      s.bc_im.data<double>()[i] = cb.imag();
    }
  }
  return s;
}

Tensor S4D::step(const Tensor& x_t_in, S4DState& s) const {
  const int64_t H = options.d_model, M = options.d_state / 2;
  SSM_CHECK(x_t_in.dim() == 2 && x_t_in.size(1) == H, "S4D::step: input must be (B, {}), got {}", H,
            shape_str(x_t_in.shape()));
  SSM_CHECK(
      !options.bidirectional,
      "S4D::step: a bidirectional layer reads future inputs and has no recurrent (step) mode");
  const int64_t Bsz = x_t_in.size(0);
  SSM_CHECK(s.x_re.defined() && s.a_re.defined(),
            "S4D::step: argument 'state' is empty; make it with init_state(batch)");
  SSM_CHECK(s.x_re.size(0) == Bsz, "S4D::step: state was made for batch {}, input has batch {}",
            s.x_re.size(0), Bsz);
  // The loops below index the state by this layer's (H, N/2): a state made by a layer of
  // another shape would be read and written out of bounds.
  const Shape state_shape{Bsz, H, M}, mode_shape{H, M};
  for (const Tensor* t : {&s.x_re, &s.x_im})
    SSM_CHECK(t->shape() == state_shape && t->dtype() == DType::F64 && t->is_contiguous(),
              "S4D::step: argument 'state' expected x of shape {} (float64), got {} ({})",
              shape_str(state_shape), shape_str(t->shape()), dtype_name(t->dtype()));
  for (const Tensor* t : {&s.a_re, &s.a_im, &s.bc_re, &s.bc_im})
    SSM_CHECK(t->shape() == mode_shape && t->dtype() == DType::F64 && t->is_contiguous(),
              "S4D::step: argument 'state' expected modes of shape {} (float64), got {} ({})",
              shape_str(mode_shape), shape_str(t->shape()), dtype_name(t->dtype()));
  const Tensor u = x_t_in.to(DType::F64).contiguous();
  const auto dvec = D.to_vector();
  Tensor y = Tensor::empty({Bsz, H}, DType::F64);
  double *xr = s.x_re.data<double>(), *xi = s.x_im.data<double>();
  const double *ar = s.a_re.data<double>(), *ai = s.a_im.data<double>();
  const double *cr = s.bc_re.data<double>(), *ci = s.bc_im.data<double>();
  const double* pu = u.data<double>();
  double* py = y.data<double>();
  for (int64_t b = 0; b < Bsz; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const double uv = pu[b * H + h];
      double acc = 0;
      double* sr = xr + (b * H + h) * M;
      double* si = xi + (b * H + h) * M;
      const int64_t o = h * M;
      for (int64_t n = 0; n < M; ++n) {
        const double nr = ar[o + n] * sr[n] - ai[o + n] * si[n] + uv;
        const double ni = ar[o + n] * si[n] + ai[o + n] * sr[n];
        sr[n] = nr;
        si[n] = ni;
        acc += cr[o + n] * nr - ci[o + n] * ni;
      }
      py[b * H + h] = 2 * acc + dvec[h] * uv;
    }
  return y.to(x_t_in.dtype());
}

}  // namespace ssm::nn
