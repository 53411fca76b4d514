// Mamba-3's data-dependent rotary embedding on the CPU, forward and backward.
//
// OpenMP over (b, h); each task walks its sequence carrying the S angles.
// Backward, with r_t = ∂Loss/∂φ_t summed over every later use (φ_t feeds φ_{t+1}):
//   ∂Loss/∂φ_t[i] (own rotation) = −dout[2i]·out[2i+1] + dout[2i+1]·out[2i]
//   r_t = r_{t+1} + that,   r_L = dfinal_angle
//   dθ_t = dt_t r_t,   ddt_t = θ_t · r_t,   dinitial_angle = r_0
//   dx[2i] = dout[2i] cos φ + dout[2i+1] sin φ,  dx[2i+1] = −dout[2i] sin φ + dout[2i+1] cos φ
// The angles of a task are recomputed into an (L, S) buffer first (the same additions and
// wraps as the forward, so the same values).
#include "ssm/kernels/mamba3_rotary.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

namespace ssm::kernels::cpu {

namespace {

// Below this many (b, l, h, n) elements a call runs on one thread.
constexpr int64_t kParallelThreshold = 1 << 15;

void expect_shape(const Tensor& t, const Shape& expected, const char* op, const char* arg,
                  const char* layout) {
  SSM_CHECK(t.shape() == expected, "{}: argument '{}' expected shape {} = {}, got {}", op, arg,
            layout, shape_str(expected), shape_str(t.shape()));
}

void expect_like(const Tensor& t, const Tensor& x, const char* op, const char* arg) {
  SSM_CHECK(t.dtype() == x.dtype(), "{}: argument '{}' expected dtype {} (the dtype of x), got {}",
            op, arg, dtype_name(x.dtype()), dtype_name(t.dtype()));
  SSM_CHECK(t.device() == Device::CPU, "{}: argument '{}' expected a CPU tensor, got {}", op, arg,
            device_name(t.device()));
}

Tensor contiguous_or_empty(const Tensor& t) {
  return t.defined() ? t.contiguous() : Tensor();
}

template <typename T>
struct Problem {
  int64_t batch, len, heads, state, angles;
  const T* x;      // (B, L, H, N)
  const T* dt;     // (B, L, H)
  const T* theta;  // (B, L, H, S)
  const T* phi0;   // (B, H, S) or null

  int64_t scalar_index(int64_t b, int64_t l, int64_t h) const { return (b * len + l) * heads + h; }
  bool worth_threads() const { return batch * len * heads * state > kParallelThreshold; }
};

struct Contiguous {
  Tensor x, dt, theta, phi0;
  explicit Contiguous(const Mamba3RotaryInputs& in)
      : x(in.x.contiguous()),
        dt(in.dt.contiguous()),
        theta(in.theta.contiguous()),
        phi0(contiguous_or_empty(in.initial_angle)) {}
};

template <typename T>
Problem<T> make_problem(const Contiguous& t) {
  return {t.x.size(0),    t.x.size(1),       t.x.size(2),
          t.x.size(3),    t.theta.size(3),   t.x.data<T>(),
          t.dt.data<T>(), t.theta.data<T>(), t.phi0.defined() ? t.phi0.data<T>() : nullptr};
}

// φ ← (φ + dt θ) mod 2π, for the S angles of one step.
template <typename T>
void advance_angles(int64_t S, T dt, const T* theta, T* phi) {
  constexpr T kTwoPi = T(2) * std::numbers::pi_v<T>;
  for (int64_t i = 0; i < S; ++i) {
    const T a = phi[i] + dt * theta[i];
    phi[i] = a - kTwoPi * std::floor(a / kTwoPi);
  }
}

template <typename T>
void initial_angles(const Problem<T>& p, int64_t bh, T* phi) {
  if (p.phi0)
    std::copy(p.phi0 + bh * p.angles, p.phi0 + (bh + 1) * p.angles, phi);
  else
    std::fill(phi, phi + p.angles, T(0));
}

template <typename T>
Mamba3RotaryForward forward_impl(const Mamba3RotaryInputs& in) {
  const Contiguous t(in);
  const Problem<T> p = make_problem<T>(t);
  const int64_t N = p.state, S = p.angles;
  Mamba3RotaryForward r;
  r.out = Tensor::empty(t.x.shape(), t.x.dtype());
  r.final_angle = Tensor::empty({p.batch, p.heads, S}, t.x.dtype());
  T* out = r.out.data<T>();
  T* final_angle = r.final_angle.data<T>();

#pragma omp parallel for schedule(static) if (p.worth_threads())
  for (int64_t bh = 0; bh < p.batch * p.heads; ++bh) {
    const int64_t b = bh / p.heads, h = bh % p.heads;
    T* phi = final_angle + bh * S;  // the running angle ends as the final angle
    initial_angles(p, bh, phi);
    for (int64_t l = 0; l < p.len; ++l) {
      const int64_t i = p.scalar_index(b, l, h);
      advance_angles(S, p.dt[i], p.theta + i * S, phi);
      const T* x = p.x + i * N;
      T* o = out + i * N;
      for (int64_t k = 0; k < S; ++k) {
        const T c = std::cos(phi[k]), s = std::sin(phi[k]);
        const T x0 = x[2 * k], x1 = x[2 * k + 1];
        o[2 * k] = x0 * c - x1 * s;
        o[2 * k + 1] = x0 * s + x1 * c;
      }
      std::copy(x + 2 * S, x + N, o + 2 * S);
    }
  }
  return r;
}

template <typename T>
Mamba3RotaryGrads backward_impl(const Mamba3RotaryInputs& in, const Tensor& dout_in,
                                const Tensor& dfinal_in) {
  const Contiguous t(in);
  const Problem<T> p = make_problem<T>(t);
  const Tensor dout_t = dout_in.contiguous();
  const Tensor dfinal_t = contiguous_or_empty(dfinal_in);
  const int64_t N = p.state, S = p.angles, L = p.len;
  const DType dtype = t.x.dtype();
  Mamba3RotaryGrads grads;
  grads.dx = Tensor::empty(t.x.shape(), dtype);
  grads.ddt = Tensor::empty(t.dt.shape(), dtype);
  grads.dtheta = Tensor::empty(t.theta.shape(), dtype);
  if (p.phi0) grads.dinitial_angle = Tensor::empty(t.phi0.shape(), dtype);
  const T* dout = dout_t.data<T>();
  const T* dfinal = dfinal_t.defined() ? dfinal_t.data<T>() : nullptr;
  T* dx = grads.dx.data<T>();
  T* ddt = grads.ddt.data<T>();
  T* dtheta = grads.dtheta.data<T>();
  T* dphi0 = p.phi0 ? grads.dinitial_angle.data<T>() : nullptr;

#pragma omp parallel if (p.worth_threads())
  {
    std::vector<T> angles(L * S), r(S), phi(S);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < p.batch * p.heads; ++bh) {
      const int64_t b = bh / p.heads, h = bh % p.heads;
      initial_angles(p, bh, phi.data());
      for (int64_t l = 0; l < L; ++l) {
        const int64_t i = p.scalar_index(b, l, h);
        advance_angles(S, p.dt[i], p.theta + i * S, phi.data());
        std::copy(phi.begin(), phi.end(), angles.begin() + l * S);
      }
      if (dfinal)
        std::copy(dfinal + bh * S, dfinal + (bh + 1) * S, r.begin());
      else
        std::fill(r.begin(), r.end(), T(0));
      for (int64_t l = L - 1; l >= 0; --l) {
        const int64_t i = p.scalar_index(b, l, h);
        const T* x = p.x + i * N;
        const T* g = dout + i * N;
        const T* th = p.theta + i * S;
        const T* ph = angles.data() + l * S;
        T* gx = dx + i * N;
        T* gth = dtheta + i * S;
        T gdt = 0;
        for (int64_t k = 0; k < S; ++k) {
          const T c = std::cos(ph[k]), s = std::sin(ph[k]);
          const T x0 = x[2 * k], x1 = x[2 * k + 1];
          const T g0 = g[2 * k], g1 = g[2 * k + 1];
          gx[2 * k] = g0 * c + g1 * s;
          gx[2 * k + 1] = -g0 * s + g1 * c;
          // ∂/∂φ of (out0, out1) = (−out1, out0).
          r[k] += -g0 * (x0 * s + x1 * c) + g1 * (x0 * c - x1 * s);
          gth[k] = p.dt[i] * r[k];
          gdt += th[k] * r[k];
        }
        std::copy(g + 2 * S, g + N, gx + 2 * S);
        ddt[i] = gdt;
      }
      if (dphi0) std::copy(r.begin(), r.end(), dphi0 + bh * S);
    }
  }
  return grads;
}

}  // namespace

void check_mamba3_rotary_inputs(const Mamba3RotaryInputs& in, const char* op) {
  const std::pair<const char*, const Tensor*> required[] = {
      {"x", &in.x}, {"dt", &in.dt}, {"theta", &in.theta}};
  for (const auto& [name, t] : required)
    SSM_CHECK(t->defined(), "{}: argument '{}' is required but undefined", op, name);
  const Tensor& x = in.x;
  SSM_CHECK(x.dim() == 4, "{}: argument 'x' expected shape (B, L, H, N), got {}", op,
            shape_str(x.shape()));
  SSM_CHECK(is_floating(x.dtype()), "{}: argument 'x' expected float32 or float64, got {}", op,
            dtype_name(x.dtype()));
  const int64_t batch = x.size(0), len = x.size(1), heads = x.size(2), n_state = x.size(3);
  SSM_CHECK(batch > 0 && len > 0 && heads > 0 && n_state > 0,
            "{}: argument 'x' expected a non-empty (B, L, H, N), got {}", op, shape_str(x.shape()));
  expect_like(x, x, op, "x");
  expect_shape(in.dt, {batch, len, heads}, op, "dt", "(B, L, H)");
  expect_like(in.dt, x, op, "dt");
  SSM_CHECK(in.theta.dim() == 4, "{}: argument 'theta' expected shape (B, L, H, S), got {}", op,
            shape_str(in.theta.shape()));
  const int64_t angles = in.theta.size(3);
  SSM_CHECK(angles > 0 && 2 * angles <= n_state,
            "{}: argument 'theta' has S = {} angles, expected 0 < 2S <= N = {} (each angle "
            "rotates a pair of state entries)",
            op, angles, n_state);
  expect_shape(in.theta, {batch, len, heads, angles}, op, "theta", "(B, L, H, S)");
  expect_like(in.theta, x, op, "theta");
  if (in.initial_angle.defined()) {
    expect_shape(in.initial_angle, {batch, heads, angles}, op, "initial_angle", "(B, H, S)");
    expect_like(in.initial_angle, x, op, "initial_angle");
  }
}

Mamba3RotaryForward mamba3_rotary_fwd(const Mamba3RotaryInputs& in) {
  check_mamba3_rotary_inputs(in, "mamba3_rotary_fwd");
  return SSM_DISPATCH_FLOAT(in.x.dtype(), "mamba3_rotary_fwd",
                            [&] { return forward_impl<scalar_t>(in); });
}

Mamba3RotaryGrads mamba3_rotary_bwd(const Mamba3RotaryInputs& in, const Tensor& dout,
                                    const Tensor& dfinal_angle) {
  const char* op = "mamba3_rotary_bwd";
  check_mamba3_rotary_inputs(in, op);
  SSM_CHECK(dout.defined(), "{}: argument 'dout' is required but undefined", op);
  expect_shape(dout, in.x.shape(), op, "dout", "(B, L, H, N)");
  expect_like(dout, in.x, op, "dout");
  if (dfinal_angle.defined()) {
    expect_shape(dfinal_angle, {in.x.size(0), in.x.size(2), in.theta.size(3)}, op, "dfinal_angle",
                 "(B, H, S)");
    expect_like(dfinal_angle, in.x, op, "dfinal_angle");
  }
  return SSM_DISPATCH_FLOAT(in.x.dtype(), op,
                            [&] { return backward_impl<scalar_t>(in, dout, dfinal_angle); });
}

}  // namespace ssm::kernels::cpu
