// S4D Vandermonde kernel, forward and backward (see include/ssm/kernels/s4d_kernel.h).
//
// Layout of the work for one channel h (one OpenMP task per channel):
//   * per mode n, in float64: A, log z, W = C·B̄, and the step l from which |z^l| is negligible;
//   * a table of z_n^j for j < kBlock (scalar_t, built by doubling: z^(2^k + i) = z^i · z^(2^k)
//     with z^(2^k) = exp(2^k log z) exact, so each entry carries at most log2(kBlock) roundings);
//   * the sequence in blocks of kBlock steps: each mode contributes seed · z^j with the seed
//     z^l₀ advanced by one multiplication per block and re-seeded exactly every kReseedBlocks.
// A block is then a small matrix product: forward K[l₀ + j] = Σ_k coef_k · table[k][j]
// (coef = the seeds as real pairs), backward t[k] = Σ_j g[l₀ + j] · table[k][j], each written
// with its accumulators held in vector registers (no horizontal sums, no spills).
// Modes are sorted by how long they stay non-negligible, so the live ones are a prefix.
//
// Backward: with g = ∂ℒ/∂K and u = ΔA, ℒ = Σ_l g_l · 2·Re Σ_n W_n z_n^l gives (gradients of
// complex values as ∂ℒ/∂Re + i·∂ℒ/∂Im)
//   ∂ℒ/∂W_n = 2·conj(S_n),               S_n = Σ_l g_l z_n^l
//   ∂ℒ/∂u_n (through z^l) = 2·conj(W_n D_n · dz/du),
//     ZOH: D_n = Σ_l l·g_l z_n^l (dz^l/du = l z^l, so dz/du is folded in),
//     bilinear: D_n = Σ_l l·g_l z_n^(l−1) = Σ_m (m+1)·g_(m+1) z_n^m, dz/du = 1/(1 − u/2)².
// Both sums reuse the forward's power blocks with weights g_l and w_l; the rest is the chain rule
// through W(u, A, Δ, B, C), u = Δ·A, A = −exp(a) + i·b, Δ = exp(log_dt), per mode in float64.
#include "ssm/kernels/s4d_kernel.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <vector>

#include "kernels/cpu/simd_vec.h"

namespace ssm {

const char* discretization_name(Discretization d) {
  switch (d) {
    case Discretization::ZOH:
      return "zoh";
    case Discretization::Bilinear:
      return "bilinear";
  }
  return "?";
}

}  // namespace ssm

namespace ssm::kernels::cpu {

namespace {

using complexd = std::complex<double>;

constexpr int64_t kBlock = 64;         // steps per block = powers tabulated per mode
constexpr int64_t kReseedBlocks = 16;  // exact re-seed of z^l₀ every 16 blocks (1024 steps)
// Once |z^l| < e^kNegligibleLog ≈ 1e-30 a mode's remaining terms are below any rounding of
// the result (relative to its own weight |W|); dropping it also keeps the loops out of
// subnormal numbers, which are very slow.
constexpr double kNegligibleLog = -69.0;
constexpr int64_t kParallelWork = int64_t{1} << 15;  // H·N·L below this runs on one thread

inline complexd cexp(complexd u) {
  const double m = std::exp(u.real());
  return {m * std::cos(u.imag()), m * std::sin(u.imag())};
}

// e^u − 1 without cancellation when |u| is small: Re = expm1(Re u)·cos(Im u) − 2 sin²(Im u / 2).
inline complexd cexpm1(complexd u) {
  const double em1 = std::expm1(u.real()), half_sin = std::sin(0.5 * u.imag());
  return {em1 * std::cos(u.imag()) - 2 * half_sin * half_sin, (em1 + 1) * std::sin(u.imag())};
}

struct Mode {
  complexd A;      // continuous-time eigenvalue
  complexd u;      // Δ·A
  complexd log_z;  // log of the discrete eigenvalue (ZOH: u itself, exactly)
  complexd W;      // C·B̄
  complexd B, C;
  int64_t live;  // for l ≥ live the mode is negligible
};

Mode make_mode(double dt, double a_re_log, double a_im, complexd B, complexd C, Discretization disc,
               int64_t L) {
  Mode m;
  m.A = {-std::exp(a_re_log), a_im};
  m.u = dt * m.A;
  m.B = B;
  m.C = C;
  if (disc == Discretization::ZOH) {
    m.log_z = m.u;
    m.W = C * B * cexpm1(m.u) / m.A;
  } else {
    const complexd q = 1.0 / (1.0 - 0.5 * m.u);
    m.log_z = std::log((1.0 + 0.5 * m.u) * q);
    m.W = C * B * dt * q;
  }
  const double decay = m.log_z.real();  // log |z| per step
  m.live = L;
  if (decay < 0)
    m.live = std::clamp<int64_t>(static_cast<int64_t>(kNegligibleLog / decay) + 1, 1, L);
  return m;
}

// Register-blocking width: four 256-bit vectors (32 floats or 16 doubles).
template <typename scalar_t>
using Vec = simd::Vec<scalar_t>;
template <typename scalar_t>
constexpr int64_t kLanes = simd::kLanes<scalar_t>;
template <typename scalar_t>
constexpr int64_t kChunk = 4 * kLanes<scalar_t>;
using simd::load;
using simd::store;

// Per-thread scratch for one channel. Modes are stored in order of decreasing lifetime
// (`live`), so the modes still alive at step l₀ are always a prefix.
template <typename scalar_t>
struct Workspace {
  std::vector<Mode> modes;        // sorted by live, descending
  std::vector<int64_t> order;     // modes[i] is input mode order[i]
  int64_t rows_padded;            // 2N rounded up to kChunk
  std::vector<scalar_t> table;    // (2N, kBlock): rows 2i, 2i+1 = Re, Im of z_i^j
  std::vector<scalar_t> table_t;  // (kBlock, rows_padded): its transpose, zero-padded
  // Running seeds z_i^l₀ (forward: times W_i) and steps z_i^kBlock as separate real and
  // imaginary arrays, so the per-block update vectorises over modes.
  std::vector<double> seed_re, seed_im, step_re, step_im;
  std::vector<scalar_t> coef;          // (2N) one block's seeds as [Re s, −Im s] pairs
  std::vector<scalar_t> g_pad, w_pad;  // backward: g and w zero-padded to whole blocks
  std::vector<scalar_t> tg, tw;  // backward: one block's Σ_j g_j z^j, Σ_j w_j z^j (rows_padded)
  explicit Workspace(int64_t N)
      : modes(N),
        order(N),
        rows_padded((2 * N + kChunk<scalar_t> - 1) / kChunk<scalar_t> * kChunk<scalar_t>),
        table(2 * N * kBlock),
        table_t(kBlock * rows_padded, scalar_t(0)),
        seed_re(N),
        seed_im(N),
        step_re(N),
        step_im(N),
        coef(2 * N),
        tg(rows_padded),
        tw(rows_padded) {}
};

template <typename scalar_t>
void setup_channel(const S4DKernelTensors& in, int64_t h, int64_t N, int64_t L, Discretization disc,
                   Workspace<scalar_t>& ws) {
  const double dt = std::exp(static_cast<double>(in.log_dt.data<scalar_t>()[h]));
  const int64_t o = h * N;
  const scalar_t *a_re = in.A_re_log.data<scalar_t>() + o, *a_im = in.A_im.data<scalar_t>() + o,
                 *b_re = in.B_re.data<scalar_t>() + o, *b_im = in.B_im.data<scalar_t>() + o,
                 *c_re = in.C_re.data<scalar_t>() + o, *c_im = in.C_im.data<scalar_t>() + o;
  for (int64_t n = 0; n < N; ++n) {
    ws.modes[n] = make_mode(dt, a_re[n], a_im[n], complexd(b_re[n], b_im[n]),
                            complexd(c_re[n], c_im[n]), disc, L);
    ws.order[n] = n;
  }
  std::stable_sort(ws.order.begin(), ws.order.end(),
                   [&](int64_t a, int64_t b) { return ws.modes[a].live > ws.modes[b].live; });
  std::vector<Mode> sorted(N);
  for (int64_t i = 0; i < N; ++i) sorted[i] = ws.modes[ws.order[i]];
  ws.modes.swap(sorted);

  double tr[kBlock], ti[kBlock];
  for (int64_t i = 0; i < N; ++i) {
    const Mode& m = ws.modes[i];
    tr[0] = 1.0;
    ti[0] = 0.0;
    for (int64_t len = 1; len < kBlock; len *= 2) {
      const complexd zl = cexp(static_cast<double>(len) * m.log_z);
      for (int64_t k = 0; k < len; ++k) {
        tr[len + k] = tr[k] * zl.real() - ti[k] * zl.imag();
        ti[len + k] = tr[k] * zl.imag() + ti[k] * zl.real();
      }
    }
    for (int64_t j = 1; j < kBlock; ++j)
      if (j * m.log_z.real() < kNegligibleLog) tr[j] = ti[j] = 0.0;
    for (int64_t j = 0; j < kBlock; ++j) {
      ws.table[(2 * i) * kBlock + j] = ws.table_t[j * ws.rows_padded + 2 * i] =
          static_cast<scalar_t>(tr[j]);
      ws.table[(2 * i + 1) * kBlock + j] = ws.table_t[j * ws.rows_padded + 2 * i + 1] =
          static_cast<scalar_t>(ti[j]);
    }
    const complexd step = cexp(static_cast<double>(kBlock) * m.log_z);
    ws.step_re[i] = step.real();
    ws.step_im[i] = step.imag();
  }
}

// Number of modes (a prefix of the sorted ones) still alive at step l0.
inline int64_t live_modes(const std::vector<Mode>& modes, int64_t l0, int64_t alive) {
  while (alive > 0 && modes[alive - 1].live <= l0) --alive;
  return alive;
}

// Moves the seeds of the first `alive` modes to step l0 of `block`: exactly from exp(l0·log z)
// (times W in the forward) every kReseedBlocks blocks, by one multiplication with z^kBlock in
// between.
inline void advance_seeds(const std::vector<Mode>& modes, int64_t alive, int64_t block, int64_t l0,
                          bool times_W, double* __restrict sr, double* __restrict si,
                          const double* __restrict zr, const double* __restrict zi) {
  if (block % kReseedBlocks == 0) {
    for (int64_t i = 0; i < alive; ++i) {
      complexd s = cexp(static_cast<double>(l0) * modes[i].log_z);
      if (times_W) s *= modes[i].W;
      sr[i] = s.real();
      si[i] = s.imag();
    }
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < alive; ++i) {
    const double re = sr[i] * zr[i] - si[i] * zi[i];
    const double im = sr[i] * zi[i] + si[i] * zr[i];
    sr[i] = re;
    si[i] = im;
  }
}

template <typename scalar_t>
void forward_channel(const S4DKernelTensors& in, int64_t h, int64_t N, int64_t L,
                     Discretization disc, Workspace<scalar_t>& ws, scalar_t* __restrict K) {
  constexpr int64_t C = kChunk<scalar_t>;
  setup_channel(in, h, N, L, disc, ws);
  int64_t alive = N;
  for (int64_t block = 0, l0 = 0; l0 < L; ++block, l0 += kBlock) {
    alive = live_modes(ws.modes, l0, alive);
    advance_seeds(ws.modes, alive, block, l0, /*times_W=*/true, ws.seed_re.data(),
                  ws.seed_im.data(), ws.step_re.data(), ws.step_im.data());
    for (int64_t i = 0; i < alive; ++i) {
      ws.coef[2 * i] = static_cast<scalar_t>(ws.seed_re[i]);
      ws.coef[2 * i + 1] = static_cast<scalar_t>(-ws.seed_im[i]);
    }
    // K[l0 + j] = 2·Σ_i Re(seed_i · z_i^j) = 2·Σ_k coef_k · table[k][j]; acc stays in registers.
    const int64_t rows = 2 * alive, len = std::min(kBlock, L - l0);
    const scalar_t* __restrict coef = ws.coef.data();
    for (int64_t jc = 0; jc < len; jc += C) {
      using V = Vec<scalar_t>;
      constexpr int64_t W = kLanes<scalar_t>;
      V a0 = {}, a1 = {}, a2 = {}, a3 = {};
      const scalar_t* __restrict tab = ws.table.data() + jc;
      for (int64_t k = 0; k < rows; ++k, tab += kBlock) {
        const scalar_t s = coef[k];
        a0 += s * load(tab);
        a1 += s * load(tab + W);
        a2 += s * load(tab + 2 * W);
        a3 += s * load(tab + 3 * W);
      }
      scalar_t acc[C];
      store(acc, a0 + a0);
      store(acc + W, a1 + a1);
      store(acc + 2 * W, a2 + a2);
      store(acc + 3 * W, a3 + a3);
      const int64_t keep = std::min(C, len - jc);
      for (int64_t j = 0; j < keep; ++j) K[l0 + jc + j] = acc[j];
    }
  }
}

template <typename scalar_t>
void backward_channel(const S4DKernelTensors& in, const scalar_t* __restrict g, int64_t h,
                      int64_t N, int64_t L, Discretization disc, Workspace<scalar_t>& ws,
                      const S4DKernelTensors& grads) {
  constexpr int64_t C = kChunk<scalar_t>;
  setup_channel(in, h, N, L, disc, ws);
  // Weights of the derivative sum D (see the file comment), both zero-padded to whole blocks.
  const int64_t padded = (L + kBlock - 1) / kBlock * kBlock;
  ws.g_pad.assign(padded, scalar_t(0));
  ws.w_pad.assign(padded, scalar_t(0));
  scalar_t* __restrict gp = ws.g_pad.data();
  scalar_t* __restrict wp = ws.w_pad.data();
  for (int64_t l = 0; l < L; ++l) gp[l] = g[l];
  if (disc == Discretization::ZOH) {
    for (int64_t l = 0; l < L; ++l) wp[l] = static_cast<scalar_t>(l) * g[l];
  } else {
    for (int64_t l = 0; l + 1 < L; ++l) wp[l] = static_cast<scalar_t>(l + 1) * g[l + 1];
  }

  std::vector<double> S_re_v(N, 0.0), S_im_v(N, 0.0), D_re_v(N, 0.0), D_im_v(N, 0.0);
  double* __restrict S_re = S_re_v.data();
  double* __restrict S_im = S_im_v.data();
  double* __restrict D_re = D_re_v.data();
  double* __restrict D_im = D_im_v.data();
  int64_t alive = N;
  const int64_t ld = ws.rows_padded;
  for (int64_t block = 0, l0 = 0; l0 < L; ++block, l0 += kBlock) {
    alive = live_modes(ws.modes, l0, alive);
    // tg[k] = Σ_j g[l0 + j] · table[k][j] (and tw with w): a row times the transposed table,
    // accumulated over j in registers for C rows k at a time.
    const int64_t rows = (2 * alive + C - 1) / C * C;
    for (int64_t kc = 0; kc < rows; kc += C) {
      using V = Vec<scalar_t>;
      constexpr int64_t W = kLanes<scalar_t>;
      V g0 = {}, g1 = {}, g2 = {}, g3 = {}, w0 = {}, w1 = {}, w2 = {}, w3 = {};
      const scalar_t* __restrict tab = ws.table_t.data() + kc;
      for (int64_t j = 0; j < kBlock; ++j, tab += ld) {
        const scalar_t gj = gp[l0 + j], wj = wp[l0 + j];
        const V t0 = load(tab), t1 = load(tab + W), t2 = load(tab + 2 * W), t3 = load(tab + 3 * W);
        g0 += gj * t0;
        g1 += gj * t1;
        g2 += gj * t2;
        g3 += gj * t3;
        w0 += wj * t0;
        w1 += wj * t1;
        w2 += wj * t2;
        w3 += wj * t3;
      }
      store(ws.tg.data() + kc, g0);
      store(ws.tg.data() + kc + W, g1);
      store(ws.tg.data() + kc + 2 * W, g2);
      store(ws.tg.data() + kc + 3 * W, g3);
      store(ws.tw.data() + kc, w0);
      store(ws.tw.data() + kc + W, w1);
      store(ws.tw.data() + kc + 2 * W, w2);
      store(ws.tw.data() + kc + 3 * W, w3);
    }
    advance_seeds(ws.modes, alive, block, l0, /*times_W=*/false, ws.seed_re.data(),
                  ws.seed_im.data(), ws.step_re.data(), ws.step_im.data());
    const double* __restrict sr = ws.seed_re.data();
    const double* __restrict si = ws.seed_im.data();
    const scalar_t* __restrict tg = ws.tg.data();
    const scalar_t* __restrict tw = ws.tw.data();
#pragma omp simd
    for (int64_t i = 0; i < alive; ++i) {
      // S_i += seed·(tg_re + i·tg_im), D_i += seed·(tw_re + i·tw_im)
      const double gr = tg[2 * i], gi = tg[2 * i + 1], wr = tw[2 * i], wi = tw[2 * i + 1];
      S_re[i] += sr[i] * gr - si[i] * gi;
      S_im[i] += sr[i] * gi + si[i] * gr;
      D_re[i] += sr[i] * wr - si[i] * wi;
      D_im[i] += sr[i] * wi + si[i] * wr;
    }
  }

  const double dt = std::exp(static_cast<double>(in.log_dt.data<scalar_t>()[h]));
  double dL_ddt = 0;
  for (int64_t i = 0; i < N; ++i) {
    const Mode& m = ws.modes[i];
    const int64_t out = h * N + ws.order[i];
    const complexd gW = 2.0 * complexd(S_re[i], -S_im[i]);
    const complexd Di(D_re[i], D_im[i]);
    complexd gB, gC, gu, gA;
    if (disc == Discretization::ZOH) {
      const complexd E = cexpm1(m.u);  // e^u − 1
      gC = gW * std::conj(m.B * E / m.A);
      gB = gW * std::conj(m.C * E / m.A);
      gu = 2.0 * std::conj(m.W * Di) + gW * std::conj(m.C * m.B * (E + 1.0) / m.A);
      gA = gW * std::conj(-m.W / m.A);  // W's explicit 1/A at fixed u
    } else {
      const complexd q = 1.0 / (1.0 - 0.5 * m.u);
      gC = gW * std::conj(m.B * dt * q);
      gB = gW * std::conj(m.C * dt * q);
      gu = 2.0 * std::conj(m.W * Di * q * q) + gW * std::conj(0.5 * m.C * m.B * dt * q * q);
      gA = 0.0;
      dL_ddt += std::real(std::conj(gW) * m.C * m.B * q);  // W's explicit Δ at fixed u
    }
    gA += dt * gu;  // u = Δ·A
    dL_ddt += std::real(std::conj(gu) * m.A);
    grads.A_re_log.data<scalar_t>()[out] = static_cast<scalar_t>(gA.real() * m.A.real());
    grads.A_im.data<scalar_t>()[out] = static_cast<scalar_t>(gA.imag());
    grads.B_re.data<scalar_t>()[out] = static_cast<scalar_t>(gB.real());
    grads.B_im.data<scalar_t>()[out] = static_cast<scalar_t>(gB.imag());
    grads.C_re.data<scalar_t>()[out] = static_cast<scalar_t>(gC.real());
    grads.C_im.data<scalar_t>()[out] = static_cast<scalar_t>(gC.imag());
  }
  grads.log_dt.data<scalar_t>()[h] = static_cast<scalar_t>(dt * dL_ddt);
}

// One OpenMP task per channel, each thread with its own workspace.
template <typename scalar_t>
void forward_all(const S4DKernelTensors& in, int64_t H, int64_t N, int64_t L, Discretization disc,
                 scalar_t* K) {
#pragma omp parallel if (H * N * L >= kParallelWork)
  {
    Workspace<scalar_t> ws(N);
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) forward_channel(in, h, N, L, disc, ws, K + h * L);
  }
}

template <typename scalar_t>
void backward_all(const S4DKernelTensors& in, const scalar_t* grad_K, int64_t H, int64_t N,
                  int64_t L, Discretization disc, const S4DKernelTensors& grads) {
#pragma omp parallel if (H * N * L >= kParallelWork)
  {
    Workspace<scalar_t> ws(N);
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) backward_channel(in, grad_K + h * L, h, N, L, disc, ws, grads);
  }
}

// The seven tensors in declaration order, for loops over all of them.
std::array<Tensor*, 7> fields(S4DKernelTensors& t) {
  return {&t.log_dt, &t.A_re_log, &t.A_im, &t.B_re, &t.B_im, &t.C_re, &t.C_im};
}
std::array<const Tensor*, 7> fields(const S4DKernelTensors& t) {
  return {&t.log_dt, &t.A_re_log, &t.A_im, &t.B_re, &t.B_im, &t.C_re, &t.C_im};
}
const char* const kFieldNames[] = {"log_dt", "A_re_log", "A_im", "B_re", "B_im", "C_re", "C_im"};

}  // namespace

void check_s4d_kernel_inputs(const S4DKernelTensors& in, int64_t L, const char* op) {
  const auto all = fields(in);
  for (int i = 0; i < 7; ++i) {
    const Tensor& t = *all[i];
    SSM_CHECK(t.defined(), "{}: argument '{}' is undefined", op, kFieldNames[i]);
    SSM_CHECK(t.device() == Device::CPU, "{}: argument '{}' expected a CPU tensor, got {}", op,
              kFieldNames[i], device_name(t.device()));
    SSM_CHECK(is_floating(t.dtype()) && t.dtype() == in.log_dt.dtype(),
              "{}: argument '{}' expected dtype {} (that of log_dt, float32 or float64), got {}",
              op, kFieldNames[i], dtype_name(in.log_dt.dtype()), dtype_name(t.dtype()));
  }
  SSM_CHECK(in.log_dt.dim() == 1 && in.log_dt.size(0) >= 1,
            "{}: argument 'log_dt' expected shape (H), got {}", op, shape_str(in.log_dt.shape()));
  const int64_t H = in.log_dt.size(0);
  const Shape& mode_shape = in.A_re_log.shape();
  SSM_CHECK(mode_shape.size() == 2 && mode_shape[0] == H && mode_shape[1] >= 1,
            "{}: argument 'A_re_log' expected shape (H, N/2) with H = {}, got {}", op, H,
            shape_str(mode_shape));
  for (int i = 2; i < 7; ++i)
    SSM_CHECK(all[i]->shape() == mode_shape,
              "{}: argument '{}' expected shape (H, N/2) = {} like A_re_log, got {}", op,
              kFieldNames[i], shape_str(mode_shape), shape_str(all[i]->shape()));
  SSM_CHECK(L >= 1, "{}: argument 'L' expected a kernel length >= 1, got {}", op, L);
}

Tensor s4d_kernel_fwd(const S4DKernelTensors& in, int64_t L, Discretization disc) {
  const int64_t H = in.log_dt.size(0), N = in.A_re_log.size(1);
  Tensor K = Tensor::empty({H, L}, in.log_dt.dtype());
  SSM_DISPATCH_FLOAT(in.log_dt.dtype(), "s4d_kernel_fwd",
                     [&] { forward_all<scalar_t>(in, H, N, L, disc, K.data<scalar_t>()); });
  return K;
}

S4DKernelTensors s4d_kernel_bwd(const S4DKernelTensors& in, const Tensor& grad_K,
                                Discretization disc) {
  const int64_t H = in.log_dt.size(0), N = in.A_re_log.size(1), L = grad_K.size(1);
  SSM_CHECK(
      grad_K.is_contiguous() && grad_K.dtype() == in.log_dt.dtype() &&
          grad_K.shape() == Shape({H, L}),
      "s4d_kernel_bwd: argument 'grad_K' expected contiguous {} (H, L) with H = {}, got {} {}",
      dtype_name(in.log_dt.dtype()), H, dtype_name(grad_K.dtype()), shape_str(grad_K.shape()));
  S4DKernelTensors grads;
  const auto src = fields(in);
  const auto dst = fields(grads);
  for (int i = 0; i < 7; ++i) *dst[i] = Tensor::empty(src[i]->shape(), in.log_dt.dtype());
  SSM_DISPATCH_FLOAT(in.log_dt.dtype(), "s4d_kernel_bwd", [&] {
    backward_all<scalar_t>(in, grad_K.data<scalar_t>(), H, N, L, disc, grads);
  });
  return grads;
}

}  // namespace ssm::kernels::cpu
