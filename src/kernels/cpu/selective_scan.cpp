// Selective scan (Mamba-1) on the CPU: forward, backward, and the single decode step.
//
// Layout of the work: OpenMP over channels (b, d); each channel walks its sequence with a
// state of N numbers on the stack, and the loop over the N state entries is the SIMD loop
// (B and C are first transposed to (B, G, L, N) so one step's N values are contiguous).
// The common state sizes are compile-time constants so the state stays in registers.
//
// Backward, per channel, chunks in reverse: recompute the chunk's states and decays from the
// saved chunk-start state (a chunk × N buffer that stays in cache), then walk the chunk
// backwards carrying g = dLoss/dh. With a_l = exp(dt_l·A) and h_l = a_l ⊙ h_{l−1} + dt_l B_l u_l:
//   g_l      = g_{l+1} ⊙ a_{l+1} + dy_l C_l            (total gradient of h_l)
//   dC_l    += dy_l h_l,   dB_l += g_l dt_l u_l,   du_l = dy_l D + dt_l Σ g_l B_l
//   ddt_l    = Σ_n (g_l h_{l−1} a_l)_n A_n + u_l Σ g_l B_l,   dA += (g_l h_{l−1} a_l) dt_l
// B and C are shared by the D/G channels of a group, so their gradients are sums over those
// channels: each task owns a slice of a group's channels and a private (L, N) accumulator,
// and the slices are added afterwards (no atomics, no races).
#include "ssm/kernels/selective_scan.h"

#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/cpu/scan_math.h"

namespace ssm::kernels::cpu {

namespace {

using detail::sum_values;
using detail::vexp;
using detail::vsigmoid;
using detail::vsoftplus;

// Below this many (b, d, l, n) updates a call runs on one thread (threads cost more than they
// save).
constexpr int64_t kParallelThreshold = 1 << 15;

// ------------------------------------------------------------------ validation

void expect_shape(const Tensor& t, const Shape& expected, const char* op, const char* arg,
                  const char* layout) {
  SSM_CHECK(t.shape() == expected, "{}: argument '{}' expected shape {} = {}, got {}", op, arg,
            layout, shape_str(expected), shape_str(t.shape()));
}

void expect_like(const Tensor& t, const Tensor& u, const char* op, const char* arg) {
  SSM_CHECK(t.dtype() == u.dtype(), "{}: argument '{}' expected dtype {} (the dtype of u), got {}",
            op, arg, dtype_name(u.dtype()), dtype_name(t.dtype()));
  SSM_CHECK(t.device() == u.device(),
            "{}: argument '{}' expected a {} tensor (the device of u), got {}", op, arg,
            device_name(u.device()), device_name(t.device()));
}

// ------------------------------------------------------------------ raw problem description

template <typename T>
struct ScanProblem {
  int64_t batch, dim, len, state, groups, chunk, n_chunks;
  const T* u;
  const T* delta;
  const T* A;
  const T* Bt;          // (B, G, L, N)
  const T* Ct;          // (B, G, L, N)
  const T* skip;        // (D) or null
  const T* z;           // (B, D, L) or null
  const T* delta_bias;  // (D) or null
  const T* h0;          // (B, D, N) or null
  bool softplus;

  int64_t channels_per_group() const { return dim / groups; }
  int64_t group_of(int64_t d) const { return d / channels_per_group(); }
};

// dt_k = softplus(delta_k + bias) (or delta_k + bias) for the n steps of a chunk, as one SIMD
// loop over the steps rather than a scalar libm call inside the recurrence.
template <typename T>
void step_sizes(const T* __restrict delta, T bias, bool softplus, int64_t n, T* __restrict dt) {
  if (softplus) {
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) dt[k] = vsoftplus(delta[k] + bias);
  } else {
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) dt[k] = delta[k] + bias;
  }
}

// (B, G, N, L) with any strides → contiguous (B, G, L, N).
template <typename T>
Tensor to_step_major(const Tensor& x) {
  const Shape& s = x.shape();
  const Shape& st = x.strides();
  const int64_t groups = s[1], n_state = s[2], len = s[3];
  Tensor out = Tensor::empty({s[0], groups, len, n_state}, x.dtype());
  const T* src = x.data<T>();
  T* dst = out.data<T>();
#pragma omp parallel for if (x.numel() > kParallelThreshold)
  for (int64_t bg = 0; bg < s[0] * groups; ++bg) {
    const T* base = src + (bg / groups) * st[0] + (bg % groups) * st[1];
    T* out_bg = dst + bg * len * n_state;
    for (int64_t l = 0; l < len; ++l)
      for (int64_t n = 0; n < n_state; ++n) out_bg[l * n_state + n] = base[n * st[2] + l * st[3]];
  }
  return out;
}

template <typename T>
ScanProblem<T> make_problem(const SelectiveScanInputs& in, const Tensor& u, const Tensor& delta,
                            const Tensor& A, const Tensor& Bt, const Tensor& Ct, const Tensor& skip,
                            const Tensor& z, const Tensor& bias, const Tensor& h0) {
  ScanProblem<T> p;
  p.batch = u.size(0);
  p.dim = u.size(1);
  p.len = u.size(2);
  p.state = A.size(1);
  p.groups = in.B.size(1);
  p.chunk = in.chunk_size;
  p.n_chunks = (p.len + p.chunk - 1) / p.chunk;
  p.u = u.data<T>();
  p.delta = delta.data<T>();
  p.A = A.data<T>();
  p.Bt = Bt.data<T>();
  p.Ct = Ct.data<T>();
  p.skip = skip.defined() ? skip.data<T>() : nullptr;
  p.z = z.defined() ? z.data<T>() : nullptr;
  p.delta_bias = bias.defined() ? bias.data<T>() : nullptr;
  p.h0 = h0.defined() ? h0.data<T>() : nullptr;
  p.softplus = in.delta_softplus;
  return p;
}

Tensor contiguous_or_empty(const Tensor& t) {
  return t.defined() ? t.contiguous() : Tensor();
}

// Calls f(std::integral_constant<int, kN>) with kN = N for the specialised state sizes, else 0
// (runtime N).
template <typename F>
void with_state_size(int64_t n_state, F&& f) {
  switch (n_state) {
    case 4:
      return f(std::integral_constant<int, 4>{});
    case 8:
      return f(std::integral_constant<int, 8>{});
    case 16:
      return f(std::integral_constant<int, 16>{});
    case 32:
      return f(std::integral_constant<int, 32>{});
    default:
      return f(std::integral_constant<int, 0>{});
  }
}

// ------------------------------------------------------------------ forward

// exp(dt·A) inside the state loops: the range-checked form, or the cheaper one when the
// whole chunk's arguments are known to be in range (the common case).
template <typename T, bool kChecked>
[[gnu::always_inline]] inline T decay(T x) {
  if constexpr (kChecked)
    return detail::vexp(x);
  else
    return detail::vexp_in_range(x);
}

// The recurrence over one chunk of n steps (u, B, C, ys start at the chunk), carrying h.
template <typename T, int kN, bool kChecked>
[[gnu::always_inline]] inline void forward_steps(int64_t N, int64_t n, const T* __restrict A,
                                                 const T* __restrict steps, const T* __restrict u,
                                                 const T* __restrict Bt, const T* __restrict Ct,
                                                 T* __restrict h, T* __restrict ys,
                                                 T* __restrict scratch) {
  if constexpr (kN > 0) N = kN;
  alignas(64) T fixed[kN > 0 ? kN : 1];
  T* __restrict prod = kN > 0 ? fixed : scratch;  // C_l ⊙ h_l, summed below
  for (int64_t k = 0; k < n; ++k) {
    const T dt = steps[k];
    const T dtu = dt * u[k];
    const T* __restrict Bl = Bt + k * N;
    const T* __restrict Cl = Ct + k * N;
#pragma omp simd
    for (int64_t i = 0; i < N; ++i) {
      const T hn = decay<T, kChecked>(dt * A[i]) * h[i] + dtu * Bl[i];
      h[i] = hn;
      prod[i] = Cl[i] * hn;
    }
    ys[k] = sum_values<T, kN>(prod, N);
  }
}

// The same recurrence, keeping every state and decay of the chunk for the backward.
template <typename T, int kN, bool kChecked>
[[gnu::always_inline]] inline void recompute_steps(int64_t N, int64_t n, const T* __restrict A,
                                                   const T* __restrict steps, const T* __restrict u,
                                                   const T* __restrict Bt, const T* __restrict Ct,
                                                   T* __restrict h, T* __restrict states,
                                                   T* __restrict decays, T* __restrict ys,
                                                   T* __restrict scratch) {
  if constexpr (kN > 0) N = kN;
  alignas(64) T fixed[kN > 0 ? kN : 1];
  T* __restrict prod = kN > 0 ? fixed : scratch;  // C_l ⊙ h_l, summed below
  for (int64_t k = 0; k < n; ++k) {
    const T dt = steps[k];
    const T dtu = dt * u[k];
    const T* __restrict Bl = Bt + k * N;
    const T* __restrict Cl = Ct + k * N;
    T* __restrict hk = states + k * N;
    T* __restrict ak = decays + k * N;
#pragma omp simd
    for (int64_t i = 0; i < N; ++i) {
      const T a = decay<T, kChecked>(dt * A[i]);
      const T hn = a * h[i] + dtu * Bl[i];
      ak[i] = a;
      hk[i] = hn;
      h[i] = hn;
      prod[i] = Cl[i] * hn;
    }
    ys[k] = sum_values<T, kN>(prod, N);
  }
}

// Per-thread buffers of the forward: N state values (runtime N) and one chunk of steps.
template <typename T>
struct ForwardScratch {
  std::vector<T> h, steps, ys, prod;
  ForwardScratch(int64_t chunk, int64_t n_state)
      : h(n_state), steps(chunk), ys(chunk), prod(n_state) {}
};

// One channel (b, d) over the whole sequence.
template <typename T, int kN>
void forward_channel(const ScanProblem<T>& p, int64_t b, int64_t d, ForwardScratch<T>& ws,
                     T* __restrict out_all, T* __restrict last_all, T* __restrict saved_all) {
  const int64_t N = kN > 0 ? kN : p.state;
  const int64_t L = p.len;
  const int64_t bd = b * p.dim + d;
  const int64_t bg = b * p.groups + p.group_of(d);
  const T* __restrict u = p.u + bd * L;
  const T* __restrict delta = p.delta + bd * L;
  const T* __restrict z = p.z ? p.z + bd * L : nullptr;
  const T* __restrict A = p.A + d * N;
  const T* __restrict Bt = p.Bt + bg * L * N;
  const T* __restrict Ct = p.Ct + bg * L * N;
  T* __restrict out = out_all + bd * L;
  T* __restrict saved = saved_all + bd * p.n_chunks * N;
  T* __restrict steps = ws.steps.data();
  T* __restrict ys = ws.ys.data();
  const T bias = p.delta_bias ? p.delta_bias[d] : T(0);
  const T skip = p.skip ? p.skip[d] : T(0);

  alignas(64) T h_fixed[kN > 0 ? kN : 1];
  T* __restrict h = kN > 0 ? h_fixed : ws.h.data();
  for (int64_t n = 0; n < N; ++n) h[n] = p.h0 ? p.h0[bd * N + n] : T(0);

  for (int64_t c = 0; c < p.n_chunks; ++c) {
    std::copy(h, h + N, saved + c * N);
    const int64_t l0 = c * p.chunk;
    const int64_t n_steps = std::min(L, l0 + p.chunk) - l0;
    step_sizes(delta + l0, bias, p.softplus, n_steps, steps);
    if (detail::exp_arguments_in_range(steps, n_steps, A, N))
      forward_steps<T, kN, false>(N, n_steps, A, steps, u + l0, Bt + l0 * N, Ct + l0 * N, h, ys,
                                  ws.prod.data());
    else
      forward_steps<T, kN, true>(N, n_steps, A, steps, u + l0, Bt + l0 * N, Ct + l0 * N, h, ys,
                                 ws.prod.data());
    const T* __restrict uc = u + l0;
    T* __restrict oc = out + l0;
    if (z) {
      const T* __restrict zc = z + l0;
#pragma omp simd
      for (int64_t k = 0; k < n_steps; ++k)
        oc[k] = (ys[k] + skip * uc[k]) * zc[k] * vsigmoid(zc[k]);
    } else {
#pragma omp simd
      for (int64_t k = 0; k < n_steps; ++k) oc[k] = ys[k] + skip * uc[k];
    }
  }
  std::copy(h, h + N, last_all + bd * N);
}

template <typename T>
SelectiveScanForward forward_impl(const SelectiveScanInputs& in) {
  const Tensor u = in.u.contiguous(), delta = in.delta.contiguous(), A = in.A.contiguous();
  const Tensor Bt = to_step_major<T>(in.B), Ct = to_step_major<T>(in.C);
  const Tensor skip = contiguous_or_empty(in.D), z = contiguous_or_empty(in.z);
  const Tensor bias = contiguous_or_empty(in.delta_bias);
  const Tensor h0 = contiguous_or_empty(in.initial_state);
  const ScanProblem<T> p = make_problem<T>(in, u, delta, A, Bt, Ct, skip, z, bias, h0);

  SelectiveScanForward r;
  r.out = Tensor::empty({p.batch, p.dim, p.len}, u.dtype());
  r.last_state = Tensor::empty({p.batch, p.dim, p.state}, u.dtype());
  r.chunk_states = Tensor::empty({p.batch, p.dim, p.n_chunks, p.state}, u.dtype());
  T* out = r.out.data<T>();
  T* last = r.last_state.data<T>();
  T* saved = r.chunk_states.data<T>();
  const int64_t channels = p.batch * p.dim;
  const bool parallel = channels * p.len * p.state > kParallelThreshold;

  with_state_size(p.state, [&](auto kN) {
#pragma omp parallel if (parallel)
    {
      ForwardScratch<T> ws(std::min(p.chunk, p.len), p.state);
#pragma omp for schedule(static)
      for (int64_t bd = 0; bd < channels; ++bd)
        forward_channel<T, decltype(kN)::value>(p, bd / p.dim, bd % p.dim, ws, out, last, saved);
    }
  });
  return r;
}

// ------------------------------------------------------------------ backward

// Where one channel's backward writes. Per-channel outputs are indexed by (b, d); dBt/dCt
// point at the (L, N) accumulator of the task's slice of the group.
template <typename T>
struct ChannelGrads {
  T* du;      // (B, D, L)
  T* ddelta;  // (B, D, L)
  T* dz;      // (B, D, L) or null
  T* dA;      // (B, D, N): summed over b afterwards
  T* dskip;   // (B, D)
  T* dbias;   // (B, D)
  T* dh0;     // (B, D, N) or null
  T* dBt;     // (L, N) of this task
  T* dCt;     // (L, N) of this task
};

// Per-thread buffers: the recomputed states and decays of one chunk, and N-sized scratch.
template <typename T>
struct BackwardScratch {
  std::vector<T> states, decays, steps, dys, ddts, carry, dA, h, prod;
  BackwardScratch(int64_t chunk, int64_t n_state)
      : states(chunk * n_state),
        decays(chunk * n_state),
        steps(chunk),
        dys(chunk),
        ddts(chunk),
        carry(n_state),
        dA(n_state),
        h(n_state),
        prod(2 * n_state) {}
};

template <typename T, int kN>
void backward_channel(const ScanProblem<T>& p, int64_t b, int64_t d, const T* __restrict saved_all,
                      const T* __restrict dout_all, const T* __restrict dlast_all,
                      const ChannelGrads<T>& out, BackwardScratch<T>& ws) {
  const int64_t N = kN > 0 ? kN : p.state;
  const int64_t L = p.len;
  const int64_t bd = b * p.dim + d;
  const int64_t bg = b * p.groups + p.group_of(d);
  const T* __restrict u = p.u + bd * L;
  const T* __restrict delta = p.delta + bd * L;
  const T* __restrict z = p.z ? p.z + bd * L : nullptr;
  const T* __restrict A = p.A + d * N;
  const T* __restrict Bt = p.Bt + bg * L * N;
  const T* __restrict Ct = p.Ct + bg * L * N;
  const T* __restrict dout = dout_all + bd * L;
  const T* __restrict saved = saved_all + bd * p.n_chunks * N;
  T* __restrict du = out.du + bd * L;
  T* __restrict ddelta = out.ddelta + bd * L;
  T* __restrict dz = out.dz ? out.dz + bd * L : nullptr;
  T* __restrict dBt = out.dBt;
  T* __restrict dCt = out.dCt;
  T* __restrict states = ws.states.data();
  T* __restrict decays = ws.decays.data();
  T* __restrict steps = ws.steps.data();
  T* __restrict dys = ws.dys.data();    // gradient of y_l (after the gate)
  T* __restrict ddts = ws.ddts.data();  // gradient of dt_l
  const T bias = p.delta_bias ? p.delta_bias[d] : T(0);
  const T skip = p.skip ? p.skip[d] : T(0);

  alignas(64) T g_fixed[kN > 0 ? kN : 1];
  alignas(64) T dA_fixed[kN > 0 ? kN : 1];
  alignas(64) T h_fixed[kN > 0 ? kN : 1];
  T* __restrict g = kN > 0 ? g_fixed : ws.carry.data();  // dLoss/dh carried to earlier steps
  T* __restrict dA = kN > 0 ? dA_fixed : ws.dA.data();
  T* __restrict h = kN > 0 ? h_fixed : ws.h.data();
  // Per-entry terms of the two sums of each step (g ⊙ B, and the dt·A chain), summed below.
  alignas(64) T gB_fixed[kN > 0 ? kN : 1];
  alignas(64) T daA_fixed[kN > 0 ? kN : 1];
  T* __restrict gB_terms = kN > 0 ? gB_fixed : ws.prod.data();
  T* __restrict daA_terms = kN > 0 ? daA_fixed : ws.prod.data() + N;
  for (int64_t n = 0; n < N; ++n) {
    g[n] = dlast_all ? dlast_all[bd * N + n] : T(0);
    dA[n] = 0;
  }
  T dskip = 0, dbias = 0;

  for (int64_t c = p.n_chunks - 1; c >= 0; --c) {
    const int64_t l0 = c * p.chunk;
    const int64_t n_steps = std::min(L, l0 + p.chunk) - l0;
    const T* __restrict start = saved + c * N;
    const T* __restrict uc = u + l0;
    const T* __restrict doutc = dout + l0;

    // Recompute this chunk's states h_l and decays a_l exactly as the forward did; keep
    // y_l = C_l·h_l in dys for the gate's gradient.
    step_sizes(delta + l0, bias, p.softplus, n_steps, steps);
    std::copy(start, start + N, h);
    if (detail::exp_arguments_in_range(steps, n_steps, A, N))
      recompute_steps<T, kN, false>(N, n_steps, A, steps, uc, Bt + l0 * N, Ct + l0 * N, h, states,
                                    decays, dys, ws.prod.data());
    else
      recompute_steps<T, kN, true>(N, n_steps, A, steps, uc, Bt + l0 * N, Ct + l0 * N, h, states,
                                   decays, dys, ws.prod.data());

    // Through the gate out = (y + D·u) · silu(z), one SIMD loop over the chunk.
    if (z) {
      const T* __restrict zc = z + l0;
      T* __restrict dzc = dz + l0;
#pragma omp simd
      for (int64_t k = 0; k < n_steps; ++k) {
        const T s = vsigmoid(zc[k]);
        const T y = dys[k] + skip * uc[k];
        dzc[k] = doutc[k] * y * s * (T(1) + zc[k] * (T(1) - s));
        dys[k] = doutc[k] * zc[k] * s;
      }
    } else {
      std::copy(doutc, doutc + n_steps, dys);
    }

    // Walk the chunk backwards.
    for (int64_t k = n_steps - 1; k >= 0; --k) {
      const int64_t l = l0 + k;
      const T dt = steps[k];
      const T ul = uc[k];
      const T dtu = dt * ul;
      const T dy = dys[k];
      const T* __restrict hk = states + k * N;
      const T* __restrict hprev = k > 0 ? states + (k - 1) * N : start;
      const T* __restrict ak = decays + k * N;
      const T* __restrict Bl = Bt + l * N;
      const T* __restrict Cl = Ct + l * N;
      T* __restrict dBl = dBt + l * N;
      T* __restrict dCl = dCt + l * N;
      dskip += dy * ul;
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) {
        const T gn = g[n] + dy * Cl[n];  // total gradient of h_l
        const T gB = gn * Bl[n];
        const T da = gn * hprev[n] * ak[n];  // gradient of dt·A_n
        dCl[n] += dy * hk[n];
        dBl[n] += gn * dtu;
        gB_terms[n] = gB;
        daA_terms[n] = da * A[n];
        dA[n] += da * dt;
        g[n] = gn * ak[n];
      }
      // du_l = dy·D + dt·Σ g⊙B;  ddt_l = Σ (dt·A chain) + u_l·Σ g⊙B.
      const T sum_gB = sum_values<T, kN>(gB_terms, N);
      du[l] = dy * skip + dt * sum_gB;
      ddts[k] = sum_values<T, kN>(daA_terms, N) + ul * sum_gB;
    }

    // dt = softplus(delta + bias): d/d(delta) = σ(delta + bias).
    const T* __restrict deltac = delta + l0;
    T* __restrict ddeltac = ddelta + l0;
    T chunk_dbias = 0;
    if (p.softplus) {
#pragma omp simd reduction(+ : chunk_dbias)
      for (int64_t k = 0; k < n_steps; ++k) {
        ddeltac[k] = ddts[k] * vsigmoid(deltac[k] + bias);
        chunk_dbias += ddeltac[k];
      }
    } else {
#pragma omp simd reduction(+ : chunk_dbias)
      for (int64_t k = 0; k < n_steps; ++k) {
        ddeltac[k] = ddts[k];
        chunk_dbias += ddts[k];
      }
    }
    dbias += chunk_dbias;
  }
  std::copy(dA, dA + N, out.dA + bd * N);
  out.dskip[bd] = dskip;
  out.dbias[bd] = dbias;
  if (out.dh0) std::copy(g, g + N, out.dh0 + bd * N);
}

// Sums the per-slice (L, N) accumulators and writes (B, G, N, L).
template <typename T>
Tensor reduce_slices(const T* parts, int64_t batch, int64_t groups, int64_t slices, int64_t len,
                     int64_t n_state, DType dtype) {
  Tensor out = Tensor::empty({batch, groups, n_state, len}, dtype);
  T* dst = out.data<T>();
  const int64_t plane = len * n_state;
#pragma omp parallel for if (batch * groups * slices * plane > kParallelThreshold)
  for (int64_t bg = 0; bg < batch * groups; ++bg) {
    const T* first = parts + bg * slices * plane;
    T* out_bg = dst + bg * plane;
    for (int64_t n = 0; n < n_state; ++n)
      for (int64_t l = 0; l < len; ++l) {
        T acc = 0;
        for (int64_t s = 0; s < slices; ++s) acc += first[s * plane + l * n_state + n];
        out_bg[n * len + l] = acc;
      }
  }
  return out;
}

// Sums a (B, rest...) buffer over the batch dimension into `shape`.
template <typename T>
Tensor sum_over_batch(const std::vector<T>& parts, int64_t batch, const Shape& shape, DType dtype) {
  Tensor out = Tensor::zeros(shape, dtype);
  T* dst = out.data<T>();
  const int64_t n = out.numel();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < n; ++i) dst[i] += parts[b * n + i];
  return out;
}

template <typename T>
SelectiveScanGrads backward_impl(const SelectiveScanInputs& in, const Tensor& chunk_states_in,
                                 const Tensor& dout_in, const Tensor& dlast_in) {
  const Tensor u = in.u.contiguous(), delta = in.delta.contiguous(), A = in.A.contiguous();
  const Tensor Bt = to_step_major<T>(in.B), Ct = to_step_major<T>(in.C);
  const Tensor skip = contiguous_or_empty(in.D), z = contiguous_or_empty(in.z);
  const Tensor bias = contiguous_or_empty(in.delta_bias);
  const Tensor h0 = contiguous_or_empty(in.initial_state);
  const ScanProblem<T> p = make_problem<T>(in, u, delta, A, Bt, Ct, skip, z, bias, h0);
  const Tensor saved = chunk_states_in.contiguous();
  const Tensor dout = dout_in.contiguous();
  const Tensor dlast = contiguous_or_empty(dlast_in);
  const DType dtype = u.dtype();

  // Tasks: (b, g, slice of the group's channels). Enough slices to keep every thread busy;
  // each slice has a private accumulator for the group's dB and dC.
  const int64_t per_group = p.channels_per_group();
  const bool parallel = p.batch * p.dim * p.len * p.state > kParallelThreshold;
  const int64_t threads = parallel ? omp_get_max_threads() : 1;
  const int64_t slices = std::clamp<int64_t>(
      (2 * threads + p.batch * p.groups - 1) / (p.batch * p.groups), 1, per_group);
  const int64_t tasks = p.batch * p.groups * slices;
  const int64_t plane = p.len * p.state;
  // Each task zeroes its own accumulators (in parallel).
  const std::unique_ptr<T[]> dB_parts = detail::uninitialized_buffer<T>(tasks * plane);
  const std::unique_ptr<T[]> dC_parts = detail::uninitialized_buffer<T>(tasks * plane);
  std::vector<T> dA_parts(p.batch * p.dim * p.state), dskip_parts(p.batch * p.dim),
      dbias_parts(p.batch * p.dim);

  SelectiveScanGrads grads;
  grads.du = Tensor::empty(u.shape(), dtype);
  grads.ddelta = Tensor::empty(u.shape(), dtype);
  if (z.defined()) grads.dz = Tensor::empty(u.shape(), dtype);
  if (h0.defined()) grads.dinitial_state = Tensor::empty(h0.shape(), dtype);

  ChannelGrads<T> out{};
  out.du = grads.du.data<T>();
  out.ddelta = grads.ddelta.data<T>();
  out.dz = z.defined() ? grads.dz.data<T>() : nullptr;
  out.dA = dA_parts.data();
  out.dskip = dskip_parts.data();
  out.dbias = dbias_parts.data();
  out.dh0 = h0.defined() ? grads.dinitial_state.data<T>() : nullptr;
  const T* saved_ptr = saved.data<T>();
  const T* dout_ptr = dout.data<T>();
  const T* dlast_ptr = dlast.defined() ? dlast.data<T>() : nullptr;

  with_state_size(p.state, [&](auto kN) {
#pragma omp parallel if (parallel)
    {
      BackwardScratch<T> ws(std::min(p.chunk, p.len), p.state);
#pragma omp for schedule(dynamic)
      for (int64_t task = 0; task < tasks; ++task) {
        const int64_t bg = task / slices, s = task % slices;
        const int64_t b = bg / p.groups, g = bg % p.groups;
        ChannelGrads<T> mine = out;
        mine.dBt = dB_parts.get() + task * plane;
        mine.dCt = dC_parts.get() + task * plane;
        std::fill(mine.dBt, mine.dBt + plane, T(0));
        std::fill(mine.dCt, mine.dCt + plane, T(0));
        const int64_t d_begin = g * per_group + s * per_group / slices;
        const int64_t d_end = g * per_group + (s + 1) * per_group / slices;
        for (int64_t d = d_begin; d < d_end; ++d)
          backward_channel<T, decltype(kN)::value>(p, b, d, saved_ptr, dout_ptr, dlast_ptr, mine,
                                                   ws);
      }
    }
  });

  grads.dB = reduce_slices(dB_parts.get(), p.batch, p.groups, slices, p.len, p.state, dtype);
  grads.dC = reduce_slices(dC_parts.get(), p.batch, p.groups, slices, p.len, p.state, dtype);
  grads.dA = sum_over_batch(dA_parts, p.batch, {p.dim, p.state}, dtype);
  if (skip.defined()) grads.dD = sum_over_batch(dskip_parts, p.batch, {p.dim}, dtype);
  if (bias.defined()) grads.ddelta_bias = sum_over_batch(dbias_parts, p.batch, {p.dim}, dtype);
  return grads;
}

// ------------------------------------------------------------------ decode step

// One decode step over the (b, d) channels; kN > 0 fixes the state size at compile time.
template <typename T, int kN>
void step_channels(int64_t batch, int64_t dim, int64_t n_state, int64_t groups, bool dt_softplus,
                   const T* px, const T* pdt, const T* pA, const T* pB, const T* pC, const T* pskip,
                   const T* pz, const T* pbias, T* ph, T* py) {
  const int64_t N = kN > 0 ? kN : n_state;
  const int64_t per_group = dim / groups;
  // A decode step is small (D·N updates per sequence): split it over the threads well below
  // the scan's threshold, or the other threads only wait while one thread works.
  constexpr int64_t kStepParallelThreshold = int64_t{1} << 12;
  // Channels go in blocks whose Δ (softplus) and gate (SiLU) are computed first in vector
  // loops: per channel these scalar transcendentals cost as much as the channel's N updates.
  constexpr int64_t kBlock = 64;
  const int64_t total = batch * dim, n_blocks = (total + kBlock - 1) / kBlock;
#pragma omp parallel if (total * N > kStepParallelThreshold)
  {
    std::vector<T> scratch(kN > 0 ? 0 : N);
    alignas(64) T fixed[kN > 0 ? kN : 1];
    T* __restrict prod = kN > 0 ? fixed : scratch.data();  // C ⊙ h, summed per channel
    alignas(64) T dts[kBlock], gates[kBlock];
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < n_blocks; ++blk) {
      const int64_t begin = blk * kBlock, count = std::min(kBlock, total - begin);
      for (int64_t i = 0; i < count; ++i)
        dts[i] = pdt[begin + i] + (pbias ? pbias[(begin + i) % dim] : T(0));
      if (dt_softplus) {
#pragma omp simd
        for (int64_t i = 0; i < count; ++i) dts[i] = vsoftplus(dts[i]);
      }
      if (pz) {
#pragma omp simd
        for (int64_t i = 0; i < count; ++i) gates[i] = pz[begin + i] * vsigmoid(pz[begin + i]);
      }
      for (int64_t i = 0; i < count; ++i) {
        const int64_t bd = begin + i, b = bd / dim, d = bd % dim;
        const int64_t bg = b * groups + d / per_group;
        const T xv = px[bd], dt = dts[i];
        const T* __restrict Ad = pA + d * N;
        const T* __restrict Bv = pB + bg * N;
        const T* __restrict Cv = pC + bg * N;
        T* __restrict h = ph + bd * N;
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) {
          const T hn = vexp(dt * Ad[n]) * h[n] + dt * xv * Bv[n];
          h[n] = hn;
          prod[n] = Cv[n] * hn;
        }
        const T acc = sum_values<T, kN>(prod, N) + (pskip ? pskip[d] : T(0)) * xv;
        py[bd] = pz ? acc * gates[i] : acc;
      }
    }
  }
}

template <typename T>
Tensor step_impl(Tensor& state, const SelectiveStepInputs& in) {
  const Tensor x = in.x.contiguous(), dt_raw = in.dt.contiguous(), A = in.A.contiguous();
  const Tensor Bm = in.B.contiguous(), Cm = in.C.contiguous();
  const Tensor skip = contiguous_or_empty(in.D), z = contiguous_or_empty(in.z);
  const Tensor bias = contiguous_or_empty(in.dt_bias);
  const int64_t batch = x.size(0), dim = x.size(1), N = A.size(1), groups = Bm.size(1);
  Tensor y = Tensor::empty({batch, dim}, x.dtype());
  auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
  with_state_size(N, [&](auto kN) {
    step_channels<T, decltype(kN)::value>(
        batch, dim, N, groups, in.dt_softplus, x.data<T>(), dt_raw.data<T>(), A.data<T>(),
        Bm.data<T>(), Cm.data<T>(), ptr(skip), ptr(z), ptr(bias), state.data<T>(), y.data<T>());
  });
  return y;
}

}  // namespace

// ------------------------------------------------------------------ public entry points

void check_selective_scan_inputs(const SelectiveScanInputs& in, const char* op) {
  const std::pair<const char*, const Tensor*> required[] = {
      {"u", &in.u}, {"delta", &in.delta}, {"A", &in.A}, {"B", &in.B}, {"C", &in.C}};
  for (const auto& [name, t] : required)
    SSM_CHECK(t->defined(), "{}: argument '{}' is required but undefined", op, name);
  const Tensor& u = in.u;
  SSM_CHECK(u.dim() == 3, "{}: argument 'u' expected shape (B, D, L), got {}", op,
            shape_str(u.shape()));
  SSM_CHECK(is_floating(u.dtype()), "{}: argument 'u' expected float32 or float64, got {}", op,
            dtype_name(u.dtype()));
  const int64_t batch = u.size(0), dim = u.size(1), len = u.size(2);
  SSM_CHECK(batch > 0 && dim > 0 && len > 0,
            "{}: argument 'u' expected a non-empty (B, D, L), got {}", op, shape_str(u.shape()));
  expect_like(u, u, op, "u");
  expect_shape(in.delta, {batch, dim, len}, op, "delta", "(B, D, L)");
  expect_like(in.delta, u, op, "delta");
  SSM_CHECK(in.A.dim() == 2 && in.A.size(0) == dim && in.A.size(1) > 0,
            "{}: argument 'A' expected shape (D, N) with D = {}, got {}", op, dim,
            shape_str(in.A.shape()));
  expect_like(in.A, u, op, "A");
  const int64_t n_state = in.A.size(1);
  SSM_CHECK(in.B.dim() == 4 && in.B.size(1) > 0,
            "{}: argument 'B' expected shape (B, G, N, L), got {}", op, shape_str(in.B.shape()));
  const int64_t groups = in.B.size(1);
  expect_shape(in.B, {batch, groups, n_state, len}, op, "B", "(B, G, N, L)");
  expect_like(in.B, u, op, "B");
  SSM_CHECK(dim % groups == 0,
            "{}: argument 'B' has G = {} groups, which do not divide the D = {} channels", op,
            groups, dim);
  expect_shape(in.C, {batch, groups, n_state, len}, op, "C", "(B, G, N, L)");
  expect_like(in.C, u, op, "C");
  if (in.D.defined()) {
    expect_shape(in.D, {dim}, op, "D", "(D)");
    expect_like(in.D, u, op, "D");
  }
  if (in.z.defined()) {
    expect_shape(in.z, {batch, dim, len}, op, "z", "(B, D, L)");
    expect_like(in.z, u, op, "z");
  }
  if (in.delta_bias.defined()) {
    expect_shape(in.delta_bias, {dim}, op, "delta_bias", "(D)");
    expect_like(in.delta_bias, u, op, "delta_bias");
  }
  if (in.initial_state.defined()) {
    expect_shape(in.initial_state, {batch, dim, n_state}, op, "initial_state", "(B, D, N)");
    expect_like(in.initial_state, u, op, "initial_state");
  }
  SSM_CHECK(in.chunk_size > 0, "{}: argument 'chunk_size' expected a positive integer, got {}", op,
            in.chunk_size);
}

SelectiveScanForward selective_scan_fwd(const SelectiveScanInputs& in) {
  check_selective_scan_inputs(in, "selective_scan_fwd");
  SSM_CHECK(in.u.device() == Device::CPU, "selective_scan_fwd: the CPU kernel got {} tensors",
            device_name(in.u.device()));
  return SSM_DISPATCH_FLOAT(in.u.dtype(), "selective_scan_fwd",
                            [&] { return forward_impl<scalar_t>(in); });
}

SelectiveScanGrads selective_scan_bwd(const SelectiveScanInputs& in, const Tensor& chunk_states,
                                      const Tensor& dout, const Tensor& dlast_state) {
  const char* op = "selective_scan_bwd";
  check_selective_scan_inputs(in, op);
  SSM_CHECK(in.u.device() == Device::CPU, "{}: the CPU kernel got {} tensors", op,
            device_name(in.u.device()));
  const int64_t batch = in.u.size(0), dim = in.u.size(1), len = in.u.size(2);
  const int64_t n_state = in.A.size(1);
  const int64_t n_chunks = (len + in.chunk_size - 1) / in.chunk_size;
  SSM_CHECK(dout.defined(), "{}: argument 'dout' is required but undefined", op);
  expect_shape(dout, {batch, dim, len}, op, "dout", "(B, D, L)");
  expect_like(dout, in.u, op, "dout");
  SSM_CHECK(chunk_states.defined(), "{}: argument 'chunk_states' is required but undefined", op);
  expect_shape(chunk_states, {batch, dim, n_chunks, n_state}, op, "chunk_states",
               "(B, D, ceil(L / chunk_size), N)");
  expect_like(chunk_states, in.u, op, "chunk_states");
  if (dlast_state.defined()) {
    expect_shape(dlast_state, {batch, dim, n_state}, op, "dlast_state", "(B, D, N)");
    expect_like(dlast_state, in.u, op, "dlast_state");
  }
  return SSM_DISPATCH_FLOAT(in.u.dtype(), op, [&] {
    return backward_impl<scalar_t>(in, chunk_states, dout, dlast_state);
  });
}

void check_selective_step_inputs(const Tensor& state, const SelectiveStepInputs& in,
                                 const char* op) {
  const std::pair<const char*, const Tensor*> required[] = {
      {"state", &state}, {"x", &in.x}, {"dt", &in.dt}, {"A", &in.A}, {"B", &in.B}, {"C", &in.C}};
  for (const auto& [name, t] : required)
    SSM_CHECK(t->defined(), "{}: argument '{}' is required but undefined", op, name);
  SSM_CHECK(in.x.dim() == 2, "{}: argument 'x' expected shape (B, D), got {}", op,
            shape_str(in.x.shape()));
  SSM_CHECK(is_floating(in.x.dtype()), "{}: argument 'x' expected float32 or float64, got {}", op,
            dtype_name(in.x.dtype()));
  const int64_t batch = in.x.size(0), dim = in.x.size(1);
  SSM_CHECK(in.A.dim() == 2 && in.A.size(0) == dim,
            "{}: argument 'A' expected shape (D, N) with D = {}, got {}", op, dim,
            shape_str(in.A.shape()));
  const int64_t n_state = in.A.size(1);
  SSM_CHECK(in.B.dim() == 3 && in.B.size(1) > 0,
            "{}: argument 'B' expected shape (B, G, N), got {}", op, shape_str(in.B.shape()));
  const int64_t groups = in.B.size(1);
  SSM_CHECK(dim % groups == 0,
            "{}: argument 'B' has G = {} groups, which do not divide the D = {} channels", op,
            groups, dim);
  expect_shape(state, {batch, dim, n_state}, op, "state", "(B, D, N)");
  SSM_CHECK(state.is_contiguous(), "{}: argument 'state' must be contiguous (updated in place)",
            op);
  expect_shape(in.dt, {batch, dim}, op, "dt", "(B, D)");
  expect_shape(in.B, {batch, groups, n_state}, op, "B", "(B, G, N)");
  expect_shape(in.C, {batch, groups, n_state}, op, "C", "(B, G, N)");
  if (in.D.defined()) expect_shape(in.D, {dim}, op, "D", "(D)");
  if (in.z.defined()) expect_shape(in.z, {batch, dim}, op, "z", "(B, D)");
  if (in.dt_bias.defined()) expect_shape(in.dt_bias, {dim}, op, "dt_bias", "(D)");
  const std::pair<const char*, const Tensor*> all[] = {
      {"state", &state}, {"x", &in.x}, {"dt", &in.dt},
      {"A", &in.A},      {"B", &in.B}, {"C", &in.C},
      {"D", &in.D},      {"z", &in.z}, {"dt_bias", &in.dt_bias}};
  for (const auto& [name, t] : all)
    if (t->defined()) expect_like(*t, in.x, op, name);
}

Tensor selective_state_update(Tensor& state, const SelectiveStepInputs& in) {
  const char* op = "selective_state_update";
  check_selective_step_inputs(state, in, op);
  SSM_CHECK(in.x.device() == Device::CPU, "{}: the CPU kernel got {} tensors", op,
            device_name(in.x.device()));
  return SSM_DISPATCH_FLOAT(in.x.dtype(), op, [&] { return step_impl<scalar_t>(state, in); });
}

}  // namespace ssm::kernels::cpu
