#include "ssm/nn/s5.h"

#include <cmath>

#include "ssm/autograd/node.h"
#include "ssm/nn/hippo.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/linear.h"
#include "ssm/ops/s5_scan.h"

namespace ssm::nn {

namespace {

// 2·Re(C̃ x) for x (B, L, P) or (B, P) as (re, im): two GEMMs against C̃ (H, P).
Tensor readout(const Tensor& x_re, const Tensor& x_im, const Tensor& c_re, const Tensor& c_im) {
  return mul_scalar(sub(linear(x_re, c_re), linear(x_im, c_im)), 2.0);
}

}  // namespace

S5::S5(const S5Options& o, Generator& gen, DType dtype) : options(o) {
  SSM_CHECK(o.d_model > 0, "S5: d_model must be positive, got {}", o.d_model);
  SSM_CHECK(o.d_state > 0, "S5: d_state (complex modes P) must be positive, got {}", o.d_state);
  SSM_CHECK(o.block_size > 0 && o.block_size % 2 == 0,
            "S5: block_size must be even (block_size/2 conjugate pairs per HiPPO block), got {}",
            o.block_size);
  SSM_CHECK(o.d_state % (o.block_size / 2) == 0,
            "S5: d_state {} must be a multiple of block_size/2 = {} (whole HiPPO blocks)",
            o.d_state, o.block_size / 2);
  SSM_CHECK(o.dt_min > 0 && o.dt_min <= o.dt_max,
            "S5: expected 0 < dt_min ≤ dt_max, got dt_min {} and dt_max {}", o.dt_min, o.dt_max);
  SSM_CHECK(o.init == "legs" || o.init == "legs-ptd",
            "S5: init expected 'legs' or 'legs-ptd', got '{}'", o.init);
  const int64_t H = o.d_model, P = o.d_state, M = o.block_size / 2;
  // One HiPPO-LegS block: Λ (M), the eigenvectors V (N, M) that carry real B, C into the
  // diagonal basis and W (M, N) with B̃ = W B. "legs": the DPLR form's normal part, V unitary,
  // W = V*. "legs-ptd": the full LegS + E, W = rows of V⁻¹ (its order N may be below
  // block_size when real eigenvalues take slots; see hippo_ptd). The E seed is drawn first,
  // and only for legs-ptd, so the legs draws are unchanged.
  std::vector<complexd> lambda, V, W;
  int64_t N = o.block_size;
  if (o.init == "legs-ptd") {
    PTD ptd = hippo_ptd(o.block_size, o.ptd_norm, gen.next_u64());
    N = ptd.n;
    lambda = std::move(ptd.lambda);
    V = std::move(ptd.V);
    W = std::move(ptd.W);
  } else {
    DPLR dplr = hippo_dplr(HippoMeasure::LegS, N);
    lambda = std::move(dplr.lambda);
    V = std::move(dplr.V);
    W.resize(M * N);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t n = 0; n < M; ++n) W[n * N + i] = std::conj(V[i * M + n]);
  }
  // Real B (block rows × H) ~ N(0, 1/H) and C (H × 2P) ~ N(0, 1/(2P)) (LeCun normal: fan-in H
  // and 2P), then B̃ = W B and C̃ = C·V per block, so that y = 2·Re(C̃ x) = C x_real at init.
  const Tensor b_real = mul_scalar(randn({P / M * N, H}, DType::F64, &gen), 1.0 / std::sqrt(H));
  const Tensor c_real =
      mul_scalar(randn({H, P / M * N}, DType::F64, &gen), 1.0 / std::sqrt(2.0 * P));
  Tensor a_re_log = Tensor::empty({P}, DType::F64), a_im = Tensor::empty({P}, DType::F64);
  Tensor b_re = Tensor::zeros({P, H}, DType::F64), b_im = Tensor::zeros({P, H}, DType::F64);
  Tensor c_re = Tensor::zeros({H, P}, DType::F64), c_im = Tensor::zeros({H, P}, DType::F64);
  const double* br = b_real.data<double>();
  const double* cr = c_real.data<double>();
  for (int64_t j = 0; j < P / M; ++j)
    for (int64_t n = 0; n < M; ++n) {
      const int64_t p = j * M + n;
      a_re_log.data<double>()[p] = std::log(-lambda[n].real());
      a_im.data<double>()[p] = lambda[n].imag();
      for (int64_t i = 0; i < N; ++i) {
        const complexd v = V[i * M + n], w = W[n * N + i];
        for (int64_t h = 0; h < H; ++h) {
          const complexd bt = w * br[(j * N + i) * H + h];
          b_re.data<double>()[p * H + h] += bt.real();
          b_im.data<double>()[p * H + h] += bt.imag();
          const complexd ct = cr[h * (P / M * N) + j * N + i] * v;
          c_re.data<double>()[h * P + p] += ct.real();
          c_im.data<double>()[h * P + p] += ct.imag();
        }
      }
    }
  log_dt = register_parameter(
      "log_dt", rand_uniform({P}, std::log(o.dt_min), std::log(o.dt_max), dtype, &gen),
      ParamKind::SSM);
  Lambda_re_log = register_parameter("Lambda_re_log", a_re_log.to(dtype), ParamKind::SSM);
  Lambda_im = register_parameter("Lambda_im", a_im.to(dtype), ParamKind::SSM);
  B_re = register_parameter("B_re", b_re.to(dtype), ParamKind::SSM);
  B_im = register_parameter("B_im", b_im.to(dtype), ParamKind::SSM);
  C_re = register_parameter("C_re", c_re.to(dtype), ParamKind::Weight);
  C_im = register_parameter("C_im", c_im.to(dtype), ParamKind::Weight);
  D = register_parameter("D", randn({H}, dtype, &gen), ParamKind::Weight);
  if (o.bidirectional) {
    // The backward readout: a second C = C_bwd·V drawn the same way.
    const Tensor c2 = mul_scalar(randn({H, P / M * N}, DType::F64, &gen), 1.0 / std::sqrt(2.0 * P));
    Tensor c2_re = Tensor::zeros({H, P}, DType::F64), c2_im = Tensor::zeros({H, P}, DType::F64);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < P / M; ++j)
        for (int64_t n = 0; n < M; ++n)
          for (int64_t i = 0; i < N; ++i) {
            const complexd ct = c2.data<double>()[h * (P / M * N) + j * N + i] * V[i * M + n];
            c2_re.data<double>()[h * P + j * M + n] += ct.real();
            c2_im.data<double>()[h * P + j * M + n] += ct.imag();
          }
    C_re_bwd = register_parameter("C_re_bwd", c2_re.to(dtype), ParamKind::Weight);
    C_im_bwd = register_parameter("C_im_bwd", c2_im.to(dtype), ParamKind::Weight);
  }
}

std::array<Tensor, 4> S5::discretize() const {
  return s5_discretize_zoh(log_dt, neg(exp(Lambda_re_log)), Lambda_im, B_re, B_im);
}

Tensor S5::forward(const Tensor& x) const {
  SSM_CHECK(x.defined() && x.dim() == 3 && x.size(2) == options.d_model,
            "S5: argument 'x' expected shape (B, L, {}), got {}", options.d_model,
            x.defined() ? shape_str(x.shape()) : "an undefined tensor");
  SSM_CHECK(x.dtype() == D.dtype(), "S5: argument 'x' expected dtype {} (the parameters'), got {}",
            dtype_name(D.dtype()), dtype_name(x.dtype()));
  const auto [a_re, a_im, bbar_re, bbar_im] = discretize();
  // B̄u for every step at once: (B, L, H)·B̄ᵀ → (B, L, P), real and imaginary parts.
  const Tensor bu_re = linear(x, bbar_re), bu_im = linear(x, bbar_im);
  const auto [x_re, x_im] = s5_scan(a_re, a_im, bu_re, bu_im);
  Tensor y = add(readout(x_re, x_im, C_re, C_im), mul(x, D));
  if (options.bidirectional) {
    const auto [r_re, r_im] = s5_scan(a_re, a_im, bu_re, bu_im, /*reverse=*/true);
    y = add(y, readout(r_re, r_im, C_re_bwd, C_im_bwd));
  }
  return y;
}

S5State S5::init_state(int64_t batch) const {
  SSM_CHECK(!options.bidirectional,
            "S5: a bidirectional layer reads future inputs and has no recurrent (step) mode");
  SSM_CHECK(batch > 0, "S5::init_state: batch must be positive, got {}", batch);
  const int64_t P = options.d_state;
  NoGradGuard no_grad;
  auto f64 = [](const Tensor& t) { return t.detach().to(DType::F64).contiguous(); };
  // Discretised once in float64 by the same op the parallel mode uses.
  const auto [a_re, a_im, b_re, b_im] = s5_discretize_zoh(f64(log_dt), neg(exp(f64(Lambda_re_log))),
                                                          f64(Lambda_im), f64(B_re), f64(B_im));
  S5State s;
  s.x_re = Tensor::zeros({batch, P}, DType::F64);
  s.x_im = Tensor::zeros({batch, P}, DType::F64);
  s.a_re = a_re.contiguous();
  s.a_im = a_im.contiguous();
  s.b_re = b_re.contiguous();
  s.b_im = b_im.contiguous();
  s.c_re = f64(C_re);
  s.c_im = f64(C_im);
  s.d = f64(D);
  return s;
}

Tensor S5::step(const Tensor& x_t, S5State& s) const {
  const int64_t H = options.d_model, P = options.d_state;
  SSM_CHECK(x_t.defined() && x_t.dim() == 2 && x_t.size(1) == H,
            "S5::step: argument 'x_t' expected shape (B, {}), got {}", H,
            x_t.defined() ? shape_str(x_t.shape()) : "an undefined tensor");
  const int64_t Bsz = x_t.size(0);
  SSM_CHECK(s.x_re.defined() && s.x_re.size(0) == Bsz,
            "S5::step: argument 'state' was made for batch {}, x_t has batch {}",
            s.x_re.defined() ? s.x_re.size(0) : 0, Bsz);
  const Tensor u = x_t.to(DType::F64).contiguous();
  Tensor y = Tensor::empty({Bsz, H}, DType::F64);
  const double *ar = s.a_re.data<double>(), *ai = s.a_im.data<double>();
  const double *br = s.b_re.data<double>(), *bi = s.b_im.data<double>();
  const double *cr = s.c_re.data<double>(), *ci = s.c_im.data<double>();
  const double *d = s.d.data<double>(), *pu = u.data<double>();
  double *xr = s.x_re.data<double>(), *xi = s.x_im.data<double>(), *py = y.data<double>();
#pragma omp parallel for schedule(static) if (Bsz * P * H >= (1 << 15))
  for (int64_t b = 0; b < Bsz; ++b) {
    const double* ub = pu + b * H;
    double* sr = xr + b * P;
    double* si = xi + b * P;
    for (int64_t p = 0; p < P; ++p) {  // x ← Λ̄ ⊙ x + B̄ u
      double in_re = 0, in_im = 0;
      for (int64_t h = 0; h < H; ++h) {
        in_re += br[p * H + h] * ub[h];
        in_im += bi[p * H + h] * ub[h];
      }
      const double nr = ar[p] * sr[p] - ai[p] * si[p] + in_re;
      si[p] = ar[p] * si[p] + ai[p] * sr[p] + in_im;
      sr[p] = nr;
    }
    for (int64_t h = 0; h < H; ++h) {  // y = 2·Re(C̃ x) + D ⊙ u
      double acc = 0;
      for (int64_t p = 0; p < P; ++p) acc += cr[h * P + p] * sr[p] - ci[h * P + p] * si[p];
      py[b * H + h] = 2 * acc + d[h] * ub[h];
    }
  }
  return y.to(x_t.dtype());
}

}  // namespace ssm::nn
