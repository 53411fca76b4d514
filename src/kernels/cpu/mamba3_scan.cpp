// Mamba-3 (SISO) scan on the CPU: forward, backward, and the single decode step.
//
// Layout of the work: OpenMP over (b, h); each task walks its sequence carrying the P×N state,
// one row p at a time with the N state entries as the SIMD loop. One exp per (b, l, h).
//
// Backward, per (b, h), chunks in reverse: recompute the chunk's states from the saved
// chunk-start state (a chunk × P × N buffer per thread), then walk the chunk backwards
// carrying g = α_{t+1} G_{t+1}, where G_t is the total gradient of S_t:
//   G_t       = g + dy_t C_tᵀ
//   dC_t     += S_tᵀ dy_t
//   dx_t     += γ_t G_t B_t + D dy_t,          dB_t     += γ_t G_tᵀ x_t
//   dx_{t−1} += β_t G_t B_{t−1},               dB_{t−1} += β_t G_tᵀ x_{t−1}
//   dα_t = ⟨G_t, S_{t−1}⟩,  dβ_t = x_{t−1}ᵀ G_t B_{t−1},  dγ_t = x_tᵀ G_t B_t
// and through α = exp(A dt), β = (1 − λ) dt α, γ = λ dt:
//   dA_t  = dt_t (α_t dα_t + β_t dβ_t)
//   ddt_t = A_t (α_t dα_t + β_t dβ_t) + (1 − λ_t) α_t dβ_t + λ_t dγ_t
//   dλ_t  = dt_t (dγ_t − α_t dβ_t)
//   g    ← α_t G_t
// (t = 0 reads the previous step's x, B from initial_x, initial_B, or has no β term.)
// B and C are shared by the heads of a group: with one head per group the gradients go
// straight into dB, dC; otherwise each head accumulates into its own (L, N) buffer and the
// buffers of a group are summed afterwards (no atomics, no races).
#include "ssm/kernels/mamba3_scan.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/scan_math.h"

namespace ssm::kernels::cpu {

namespace {

using detail::uninitialized_buffer;

// Below this many (b, l, h, p, n) updates a call runs on one thread.
constexpr int64_t kParallelThreshold = 1 << 15;

// ------------------------------------------------------------------ validation

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

// ------------------------------------------------------------------ problem description

template <typename T>
struct Problem {
  int64_t batch, len, heads, head_dim, groups, state, chunk, n_chunks;
  bool A_per_step;  // A is (B, L, H) rather than (H)
  const T* x;       // (B, L, H, P)
  const T* dt;      // (B, L, H)
  const T* A;       // (H) or (B, L, H)
  const T* lam;     // (B, L, H)
  const T* B;       // (B, L, G, N)
  const T* C;       // (B, L, G, N)
  const T* D;       // (H) or null
  const T* h0;      // (B, H, P, N) or null
  const T* B0;      // (B, G, N) or null
  const T* x0;      // (B, H, P) or null

  int64_t heads_per_group() const { return heads / groups; }
  int64_t plane() const { return head_dim * state; }
  int64_t scalar_index(int64_t b, int64_t l, int64_t h) const { return (b * len + l) * heads + h; }
  int64_t x_offset(int64_t b, int64_t l, int64_t h) const {
    return scalar_index(b, l, h) * head_dim;
  }
  int64_t bc_offset(int64_t b, int64_t l, int64_t g) const {
    return ((b * len + l) * groups + g) * state;
  }
  T A_at(int64_t b, int64_t l, int64_t h) const {
    return A_per_step ? A[scalar_index(b, l, h)] : A[h];
  }
  int64_t chunk_steps(int64_t c) const { return std::min(len, (c + 1) * chunk) - c * chunk; }
  bool worth_threads() const { return batch * len * heads * head_dim * state > kParallelThreshold; }
};

struct Contiguous {
  Tensor x, dt, A, lam, B, C, D, h0, B0, x0;
  explicit Contiguous(const Mamba3ScanInputs& in)
      : x(in.x.contiguous()),
        dt(in.dt.contiguous()),
        A(in.A.contiguous()),
        lam(in.lambda.contiguous()),
        B(in.B.contiguous()),
        C(in.C.contiguous()),
        D(contiguous_or_empty(in.D)),
        h0(contiguous_or_empty(in.initial_state)),
        B0(contiguous_or_empty(in.initial_B)),
        x0(contiguous_or_empty(in.initial_x)) {}
};

template <typename T>
Problem<T> make_problem(const Contiguous& t, int64_t chunk) {
  Problem<T> p;
  p.batch = t.x.size(0);
  p.len = t.x.size(1);
  p.heads = t.x.size(2);
  p.head_dim = t.x.size(3);
  p.groups = t.B.size(2);
  p.state = t.B.size(3);
  p.chunk = chunk;
  p.n_chunks = (p.len + chunk - 1) / chunk;
  p.A_per_step = t.A.dim() == 3;
  p.x = t.x.data<T>();
  p.dt = t.dt.data<T>();
  p.A = t.A.data<T>();
  p.lam = t.lam.data<T>();
  p.B = t.B.data<T>();
  p.C = t.C.data<T>();
  p.D = t.D.defined() ? t.D.data<T>() : nullptr;
  p.h0 = t.h0.defined() ? t.h0.data<T>() : nullptr;
  p.B0 = t.B0.defined() ? t.B0.data<T>() : nullptr;
  p.x0 = t.x0.defined() ? t.x0.data<T>() : nullptr;
  return p;
}

// The three coefficients of one step.
template <typename T>
struct Coefficients {
  T alpha, beta, gamma;
};

template <typename T>
Coefficients<T> coefficients(T dt, T A, T lam) {
  const T alpha = std::exp(A * dt);
  return {alpha, (T(1) - lam) * dt * alpha, lam * dt};
}

// ------------------------------------------------------------------ one step

// S_out = α S_in + β x_prev B_prevᵀ + γ x Bᵀ and y = S_out C + D x. S_in may equal S_out (the
// update is elementwise). Without the previous step (kHasPrev false) the β term is absent.
template <typename T, bool kHasPrev>
[[gnu::always_inline]] inline void advance(int64_t P, int64_t N, const Coefficients<T>& k,
                                           const T* __restrict x_prev, const T* __restrict B_prev,
                                           const T* __restrict x, const T* __restrict Bt,
                                           const T* __restrict Ct, T skip, const T* S_in, T* S_out,
                                           T* __restrict y) {
  for (int64_t p = 0; p < P; ++p) {
    const T* row_in = S_in + p * N;
    T* row_out = S_out + p * N;
    const T cg = k.gamma * x[p];
    T acc = 0;
    if constexpr (kHasPrev) {
      const T cb = k.beta * x_prev[p];
#pragma omp simd reduction(+ : acc)
      for (int64_t n = 0; n < N; ++n) {
        const T s = k.alpha * row_in[n] + cb * B_prev[n] + cg * Bt[n];
        row_out[n] = s;
        acc += s * Ct[n];
      }
    } else {
#pragma omp simd reduction(+ : acc)
      for (int64_t n = 0; n < N; ++n) {
        const T s = k.alpha * row_in[n] + cg * Bt[n];
        row_out[n] = s;
        acc += s * Ct[n];
      }
    }
    y[p] = acc + skip * x[p];
  }
}

// Where the step before t (within sequence b, head h, group g) comes from: the sequence
// itself, the initial_x / initial_B inputs, or nowhere.
template <typename T>
struct Previous {
  const T* x = nullptr;
  const T* B = nullptr;
  bool present() const { return x != nullptr; }
};

template <typename T>
Previous<T> previous_step(const Problem<T>& p, int64_t b, int64_t t, int64_t h) {
  const int64_t g = h / p.heads_per_group();
  if (t > 0) return {p.x + p.x_offset(b, t - 1, h), p.B + p.bc_offset(b, t - 1, g)};
  if (p.x0) return {p.x0 + (b * p.heads + h) * p.head_dim, p.B0 + (b * p.groups + g) * p.state};
  return {};
}

// Steps [l0, l0 + n) of (b, h): S_in is the state before l0; state k is written to
// states + k·stride (stride 0: one running buffer); outputs to y (or discarded into scratch).
template <typename T>
void run_steps(const Problem<T>& p, int64_t b, int64_t h, int64_t l0, int64_t n, const T* S_in,
               T* states, int64_t stride, T* y_all, T* y_scratch) {
  const int64_t P = p.head_dim, N = p.state, g = h / p.heads_per_group();
  const T skip = p.D ? p.D[h] : T(0);
  const T* prev_state = S_in;
  for (int64_t k = 0; k < n; ++k) {
    const int64_t t = l0 + k;
    const int64_t i = p.scalar_index(b, t, h);
    const Coefficients<T> c = coefficients(p.dt[i], p.A_at(b, t, h), p.lam[i]);
    const Previous<T> prev = previous_step(p, b, t, h);
    T* S_out = states + k * stride;
    T* y = y_all ? y_all + p.x_offset(b, t, h) : y_scratch;
    const T* x = p.x + p.x_offset(b, t, h);
    const T* Bt = p.B + p.bc_offset(b, t, g);
    const T* Ct = p.C + p.bc_offset(b, t, g);
    if (prev.present())
      advance<T, true>(P, N, c, prev.x, prev.B, x, Bt, Ct, skip, prev_state, S_out, y);
    else
      advance<T, false>(P, N, c, nullptr, nullptr, x, Bt, Ct, skip, prev_state, S_out, y);
    prev_state = S_out;
  }
}

// ------------------------------------------------------------------ forward

template <typename T>
Mamba3ScanForward forward_impl(const Mamba3ScanInputs& in, bool save) {
  const Contiguous t(in);
  const Problem<T> p = make_problem<T>(t, in.chunk_size);
  const int64_t PN = p.plane();
  Mamba3ScanForward r;
  r.y = Tensor::empty({p.batch, p.len, p.heads, p.head_dim}, t.x.dtype());
  r.final_state = Tensor::empty({p.batch, p.heads, p.head_dim, p.state}, t.x.dtype());
  if (save)
    r.chunk_states =
        Tensor::empty({p.batch, p.heads, p.n_chunks, p.head_dim, p.state}, t.x.dtype());
  T* y = r.y.data<T>();
  T* final_state = r.final_state.data<T>();
  T* saved = save ? r.chunk_states.data<T>() : nullptr;

#pragma omp parallel for schedule(static) if (p.worth_threads())
  for (int64_t bh = 0; bh < p.batch * p.heads; ++bh) {
    const int64_t b = bh / p.heads, h = bh % p.heads;
    T* S = final_state + bh * PN;  // the running state ends as the final state
    if (p.h0)
      std::copy(p.h0 + bh * PN, p.h0 + (bh + 1) * PN, S);
    else
      std::fill(S, S + PN, T(0));
    for (int64_t c = 0; c < p.n_chunks; ++c) {
      if (saved) std::copy(S, S + PN, saved + (bh * p.n_chunks + c) * PN);
      run_steps(p, b, h, c * p.chunk, p.chunk_steps(c), S, S, 0, y, static_cast<T*>(nullptr));
    }
  }
  return r;
}

// ------------------------------------------------------------------ backward

// Where the backward of one (b, h) writes.
template <typename T>
struct HeadGrads {
  T* dx;       // (B, L, H, P), zero-initialised (two steps add to each row)
  T* ddt;      // (B, L, H)
  T* dlam;     // (B, L, H)
  T* dA_step;  // (B, L, H) when A is per step, else null
  T* dA_head;  // (B, H) partial sums when A is (H), else null
  T* dD;       // (B, H) partial sums
  T* dh0;      // (B, H, P, N) or null
  T* dx0;      // (B, H, P) or null, zero-initialised
  T* dB0;      // (B, H, N) per-head parts or null, zero-initialised
  T* dB;       // dB rows of this (b, h): step t at dB + t·bc_stride
  T* dC;       // likewise
  int64_t bc_stride;
};

template <typename T>
struct BackwardScratch {
  std::vector<T> states, g, y;  // y: the recomputed outputs, discarded
  BackwardScratch(int64_t chunk, int64_t plane, int64_t P)
      : states(chunk * plane), g(plane), y(P) {}
};

// One backward step at t for row-major P×N matrices. Returns (dα, dβ, dγ).
template <typename T, bool kHasPrev>
[[gnu::always_inline]] inline Coefficients<T> backward_step(
    int64_t P, int64_t N, const Coefficients<T>& k, T skip, const T* __restrict dy,
    const T* __restrict x, const T* __restrict Bt, const T* __restrict Ct,
    const T* __restrict x_prev, const T* __restrict B_prev, const T* __restrict S_t,
    const T* __restrict S_prev, T* __restrict g, T* __restrict dx, T* __restrict dx_prev,
    T* __restrict dBt, T* __restrict dCt, T* __restrict dB_prev) {
  T dalpha = 0, dbeta = 0, dgamma = 0;
  for (int64_t p = 0; p < P; ++p) {
    const T dyp = dy[p], xp = x[p];
    const T gx = k.gamma * xp;
    const T* __restrict S_row = S_t + p * N;
    const T* __restrict S_prev_row = S_prev + p * N;
    T* __restrict g_row = g + p * N;
    T gB = 0, gB_prev = 0, da = 0;
    if constexpr (kHasPrev) {
      const T bx = k.beta * x_prev[p];
#pragma omp simd reduction(+ : gB, gB_prev, da)
      for (int64_t n = 0; n < N; ++n) {
        const T G = g_row[n] + dyp * Ct[n];
        gB += G * Bt[n];
        gB_prev += G * B_prev[n];
        da += G * S_prev_row[n];
        dCt[n] += dyp * S_row[n];
        dBt[n] += gx * G;
        dB_prev[n] += bx * G;
        g_row[n] = k.alpha * G;
      }
      dx_prev[p] += k.beta * gB_prev;
      dbeta += x_prev[p] * gB_prev;
    } else {
#pragma omp simd reduction(+ : gB, da)
      for (int64_t n = 0; n < N; ++n) {
        const T G = g_row[n] + dyp * Ct[n];
        gB += G * Bt[n];
        da += G * S_prev_row[n];
        dCt[n] += dyp * S_row[n];
        dBt[n] += gx * G;
        g_row[n] = k.alpha * G;
      }
    }
    dx[p] += k.gamma * gB + skip * dyp;
    dgamma += xp * gB;
    dalpha += da;
  }
  return {dalpha, dbeta, dgamma};
}

template <typename T>
void backward_head(const Problem<T>& p, int64_t b, int64_t h, const T* saved_all, const T* dy_all,
                   const T* dfinal_all, const HeadGrads<T>& out, BackwardScratch<T>& ws) {
  const int64_t P = p.head_dim, N = p.state, PN = p.plane();
  const int64_t bh = b * p.heads + h, g_idx = h / p.heads_per_group();
  const T skip = p.D ? p.D[h] : T(0);
  T* g = ws.g.data();
  T* states = ws.states.data();
  if (dfinal_all)
    std::copy(dfinal_all + bh * PN, dfinal_all + (bh + 1) * PN, g);
  else
    std::fill(g, g + PN, T(0));
  T dD = 0, dA_head = 0;

  for (int64_t c = p.n_chunks - 1; c >= 0; --c) {
    const int64_t l0 = c * p.chunk, n = p.chunk_steps(c);
    const T* start = saved_all + (bh * p.n_chunks + c) * PN;
    // Recompute the chunk's states (the outputs are not needed: y does not enter the backward).
    run_steps(p, b, h, l0, n, start, states, PN, static_cast<T*>(nullptr), ws.y.data());

    for (int64_t k = n - 1; k >= 0; --k) {
      const int64_t t = l0 + k;
      const int64_t i = p.scalar_index(b, t, h);
      const T dt = p.dt[i], A = p.A_at(b, t, h), lam = p.lam[i];
      const Coefficients<T> co = coefficients(dt, A, lam);
      const Previous<T> prev = previous_step(p, b, t, h);
      const T* x = p.x + p.x_offset(b, t, h);
      const T* dy = dy_all + p.x_offset(b, t, h);
      const T* Bt = p.B + p.bc_offset(b, t, g_idx);
      const T* Ct = p.C + p.bc_offset(b, t, g_idx);
      const T* S_t = states + k * PN;
      const T* S_prev = k > 0 ? states + (k - 1) * PN : start;
      T* dx = out.dx + p.x_offset(b, t, h);
      T* dBt = out.dB + t * out.bc_stride;
      T* dCt = out.dC + t * out.bc_stride;
      for (int64_t q = 0; q < P; ++q) dD += dy[q] * x[q];

      Coefficients<T> d;
      if (prev.present()) {
        T* dx_prev = t > 0 ? out.dx + p.x_offset(b, t - 1, h) : out.dx0 + bh * P;
        T* dB_prev = t > 0 ? out.dB + (t - 1) * out.bc_stride : out.dB0 + bh * N;
        d = backward_step<T, true>(P, N, co, skip, dy, x, Bt, Ct, prev.x, prev.B, S_t, S_prev, g,
                                   dx, dx_prev, dBt, dCt, dB_prev);
      } else {
        d = backward_step<T, false>(P, N, co, skip, dy, x, Bt, Ct, nullptr, nullptr, S_t, S_prev, g,
                                    dx, nullptr, dBt, dCt, nullptr);
      }
      // d.alpha, d.beta, d.gamma hold dα, dβ, dγ.
      const T through_decay = co.alpha * d.alpha + co.beta * d.beta;  // ∂/∂(A dt)
      out.ddt[i] = A * through_decay + (T(1) - lam) * co.alpha * d.beta + lam * d.gamma;
      out.dlam[i] = dt * (d.gamma - co.alpha * d.beta);
      if (out.dA_step)
        out.dA_step[i] = dt * through_decay;
      else
        dA_head += dt * through_decay;
    }
  }
  if (out.dh0) std::copy(g, g + PN, out.dh0 + bh * PN);
  out.dD[bh] = dD;
  if (out.dA_head) out.dA_head[bh] = dA_head;
}

// Sums per-head (B, H, L, N) buffers over the heads of each group into (B, L, G, N).
template <typename T>
void reduce_heads(const T* parts, const Problem<T>& p, int64_t rows, T* out) {
  const int64_t N = p.state, per_group = p.heads_per_group();
#pragma omp parallel for if (p.worth_threads())
  for (int64_t bl = 0; bl < p.batch * rows; ++bl) {
    const int64_t b = bl / rows, l = bl % rows;
    for (int64_t g = 0; g < p.groups; ++g) {
      T* dst = out + (bl * p.groups + g) * N;
      std::fill(dst, dst + N, T(0));
      for (int64_t h = g * per_group; h < (g + 1) * per_group; ++h) {
        const T* src = parts + ((b * p.heads + h) * rows + l) * N;
        for (int64_t n = 0; n < N; ++n) dst[n] += src[n];
      }
    }
  }
}

// Sums a (B, rest…) buffer over the batch into `shape`.
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
Mamba3ScanGrads backward_impl(const Mamba3ScanInputs& in, const Tensor& chunk_states_in,
                              const Tensor& dy_in, const Tensor& dfinal_in) {
  const Contiguous t(in);
  const Problem<T> p = make_problem<T>(t, in.chunk_size);
  const Tensor saved = chunk_states_in.contiguous();
  const Tensor dy = dy_in.contiguous();
  const Tensor dfinal = contiguous_or_empty(dfinal_in);
  const DType dtype = t.x.dtype();
  const int64_t BH = p.batch * p.heads, N = p.state;
  const bool shared_bc = p.heads_per_group() > 1;

  Mamba3ScanGrads grads;
  grads.dx = Tensor::zeros(t.x.shape(), dtype);
  grads.ddt = Tensor::empty(t.dt.shape(), dtype);
  grads.dlambda = Tensor::empty(t.lam.shape(), dtype);
  if (p.A_per_step) grads.dA = Tensor::empty(t.A.shape(), dtype);
  if (p.h0) grads.dinitial_state = Tensor::empty(t.h0.shape(), dtype);
  if (p.x0) grads.dinitial_x = Tensor::zeros(t.x0.shape(), dtype);
  grads.dB = Tensor::empty(t.B.shape(), dtype);
  grads.dC = Tensor::empty(t.C.shape(), dtype);
  // Per-head accumulators when heads share B and C; the outputs themselves otherwise.
  std::unique_ptr<T[]> dB_parts, dC_parts;
  if (shared_bc) {
    dB_parts = uninitialized_buffer<T>(BH * p.len * N);
    dC_parts = uninitialized_buffer<T>(BH * p.len * N);
  }
  std::vector<T> dB0_parts(p.B0 ? BH * N : 0, T(0));
  std::vector<T> dD_parts(BH), dA_parts(p.A_per_step ? 0 : BH);

  HeadGrads<T> out{};
  out.dx = grads.dx.data<T>();
  out.ddt = grads.ddt.data<T>();
  out.dlam = grads.dlambda.data<T>();
  out.dA_step = p.A_per_step ? grads.dA.data<T>() : nullptr;
  out.dA_head = p.A_per_step ? nullptr : dA_parts.data();
  out.dD = dD_parts.data();
  out.dh0 = p.h0 ? grads.dinitial_state.data<T>() : nullptr;
  out.dx0 = p.x0 ? grads.dinitial_x.data<T>() : nullptr;
  out.dB0 = p.B0 ? dB0_parts.data() : nullptr;
  const T* saved_ptr = saved.data<T>();
  const T* dy_ptr = dy.data<T>();
  const T* dfinal_ptr = dfinal.defined() ? dfinal.data<T>() : nullptr;
  T* dB = grads.dB.data<T>();
  T* dC = grads.dC.data<T>();

#pragma omp parallel if (p.worth_threads())
  {
    BackwardScratch<T> ws(std::min(p.chunk, p.len), p.plane(), p.head_dim);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < BH; ++bh) {
      const int64_t b = bh / p.heads, h = bh % p.heads;
      HeadGrads<T> mine = out;
      if (shared_bc) {
        mine.dB = dB_parts.get() + bh * p.len * N;
        mine.dC = dC_parts.get() + bh * p.len * N;
        mine.bc_stride = N;
        std::fill(mine.dB, mine.dB + p.len * N, T(0));
        std::fill(mine.dC, mine.dC + p.len * N, T(0));
      } else {
        // One head per group: this task owns group g = h of batch b.
        mine.dB = dB + p.bc_offset(b, 0, h);
        mine.dC = dC + p.bc_offset(b, 0, h);
        mine.bc_stride = p.groups * N;
        for (int64_t l = 0; l < p.len; ++l) {
          std::fill(mine.dB + l * mine.bc_stride, mine.dB + l * mine.bc_stride + N, T(0));
          std::fill(mine.dC + l * mine.bc_stride, mine.dC + l * mine.bc_stride + N, T(0));
        }
      }
      backward_head(p, b, h, saved_ptr, dy_ptr, dfinal_ptr, mine, ws);
    }
  }

  if (shared_bc) {
    reduce_heads(dB_parts.get(), p, p.len, dB);
    reduce_heads(dC_parts.get(), p, p.len, dC);
  }
  if (p.B0) {
    grads.dinitial_B = Tensor::empty(t.B0.shape(), dtype);
    reduce_heads(dB0_parts.data(), p, 1, grads.dinitial_B.data<T>());
  }
  if (!p.A_per_step) grads.dA = sum_over_batch(dA_parts, p.batch, {p.heads}, dtype);
  if (p.D) grads.dD = sum_over_batch(dD_parts, p.batch, {p.heads}, dtype);
  return grads;
}

// ------------------------------------------------------------------ decode step

template <typename T>
Tensor step_impl(Tensor& state, Tensor& prev_B, Tensor& prev_x, const Mamba3StepInputs& in) {
  const Tensor x = in.x.contiguous(), dt = in.dt.contiguous(), A = in.A.contiguous();
  const Tensor lam = in.lambda.contiguous(), Bm = in.B.contiguous(), Cm = in.C.contiguous();
  const Tensor D = contiguous_or_empty(in.D);
  const int64_t batch = x.size(0), heads = x.size(1), P = x.size(2);
  const int64_t groups = Bm.size(1), N = Bm.size(2), per_group = heads / groups;
  const bool A_per_sequence = A.dim() == 2;
  Tensor y = Tensor::empty({batch, heads, P}, x.dtype());
  const T* px = x.data<T>();
  const T* pdt = dt.data<T>();
  const T* pA = A.data<T>();
  const T* plam = lam.data<T>();
  const T* pB = Bm.data<T>();
  const T* pC = Cm.data<T>();
  const T* pD = D.defined() ? D.data<T>() : nullptr;
  T* pS = state.data<T>();
  T* pBprev = prev_B.data<T>();
  T* pxprev = prev_x.data<T>();
  T* py = y.data<T>();
#pragma omp parallel for if (batch * heads * P * N > kParallelThreshold)
  for (int64_t bh = 0; bh < batch * heads; ++bh) {
    const int64_t b = bh / heads, h = bh % heads;
    const int64_t bg = b * groups + h / per_group;
    const Coefficients<T> c = coefficients(pdt[bh], A_per_sequence ? pA[bh] : pA[h], plam[bh]);
    T* S = pS + bh * P * N;
    advance<T, true>(P, N, c, pxprev + bh * P, pBprev + bg * N, px + bh * P, pB + bg * N,
                     pC + bg * N, pD ? pD[h] : T(0), S, S, py + bh * P);
  }
  // The cache now holds this step as "the previous one" (after every head has read it).
  std::copy(px, px + batch * heads * P, pxprev);
  std::copy(pB, pB + batch * groups * N, pBprev);
  return y;
}

// ------------------------------------------------------------------ value checks

// The first index where ok(v) fails, or −1.
template <typename T, typename F>
int64_t first_bad(const Tensor& t, F ok) {
  const Tensor c = t.contiguous();
  const T* v = c.data<T>();
  for (int64_t i = 0; i < c.numel(); ++i)
    if (!ok(v[i])) return i;
  return -1;
}

std::string index_str(const Shape& shape, int64_t flat) {
  std::vector<int64_t> idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  std::string s = "[";
  for (size_t d = 0; d < idx.size(); ++d) s += (d ? ", " : "") + std::to_string(idx[d]);
  return s + "]";
}

template <typename T>
void check_values_impl(const Tensor& dt, const Tensor& A, const Tensor& lam, const char* op) {
  struct Rule {
    const char* name;
    const Tensor* t;
    bool (*ok)(T);
    const char* expected;
  };
  const Rule rules[] = {
      {"dt", &dt, [](T v) { return std::isfinite(v) && v >= T(0); }, "finite and >= 0"},
      {"A", &A, [](T v) { return std::isfinite(v) && v <= T(0); }, "finite and <= 0"},
      {"lambda", &lam, [](T v) { return v >= T(0) && v <= T(1); }, "in [0, 1]"},
  };
  for (const Rule& r : rules) {
    const int64_t i = first_bad<T>(*r.t, r.ok);
    if (i >= 0) {
      const Tensor values = r.t->contiguous();
      const double v = values.template data<T>()[i];
      SSM_CHECK(false, "{}: argument '{}' expected values {}, got {} at {}", op, r.name, r.expected,
                v, index_str(r.t->shape(), i));
    }
  }
}

}  // namespace

// ------------------------------------------------------------------ public entry points

void check_mamba3_scan_inputs(const Mamba3ScanInputs& in, const char* op) {
  const std::pair<const char*, const Tensor*> required[] = {{"x", &in.x}, {"dt", &in.dt},
                                                            {"A", &in.A}, {"lambda", &in.lambda},
                                                            {"B", &in.B}, {"C", &in.C}};
  for (const auto& [name, t] : required)
    SSM_CHECK(t->defined(), "{}: argument '{}' is required but undefined", op, name);
  const Tensor& x = in.x;
  SSM_CHECK(x.dim() == 4, "{}: argument 'x' expected shape (B, L, H, P), got {}", op,
            shape_str(x.shape()));
  SSM_CHECK(is_floating(x.dtype()), "{}: argument 'x' expected float32 or float64, got {}", op,
            dtype_name(x.dtype()));
  const int64_t batch = x.size(0), len = x.size(1), heads = x.size(2), head_dim = x.size(3);
  SSM_CHECK(batch > 0 && len > 0 && heads > 0 && head_dim > 0,
            "{}: argument 'x' expected a non-empty (B, L, H, P), got {}", op, shape_str(x.shape()));
  expect_like(x, x, op, "x");
  expect_shape(in.dt, {batch, len, heads}, op, "dt", "(B, L, H)");
  expect_like(in.dt, x, op, "dt");
  if (in.A.dim() != 1)
    expect_shape(in.A, {batch, len, heads}, op, "A", "(B, L, H) or (H)");
  else
    expect_shape(in.A, {heads}, op, "A", "(H) or (B, L, H)");
  expect_like(in.A, x, op, "A");
  expect_shape(in.lambda, {batch, len, heads}, op, "lambda", "(B, L, H)");
  expect_like(in.lambda, x, op, "lambda");
  SSM_CHECK(in.B.dim() == 4 && in.B.size(2) > 0 && in.B.size(3) > 0,
            "{}: argument 'B' expected shape (B, L, G, N), got {}", op, shape_str(in.B.shape()));
  const int64_t groups = in.B.size(2), n_state = in.B.size(3);
  expect_shape(in.B, {batch, len, groups, n_state}, op, "B", "(B, L, G, N)");
  expect_like(in.B, x, op, "B");
  SSM_CHECK(heads % groups == 0,
            "{}: argument 'B' has G = {} groups, which do not divide the H = {} heads", op, groups,
            heads);
  expect_shape(in.C, {batch, len, groups, n_state}, op, "C", "(B, L, G, N)");
  expect_like(in.C, x, op, "C");
  if (in.D.defined()) {
    expect_shape(in.D, {heads}, op, "D", "(H)");
    expect_like(in.D, x, op, "D");
  }
  if (in.initial_state.defined()) {
    expect_shape(in.initial_state, {batch, heads, head_dim, n_state}, op, "initial_state",
                 "(B, H, P, N)");
    expect_like(in.initial_state, x, op, "initial_state");
  }
  SSM_CHECK(in.initial_B.defined() == in.initial_x.defined(),
            "{}: arguments 'initial_B' and 'initial_x' come together (the previous step's B and "
            "x), got only '{}'",
            op, in.initial_B.defined() ? "initial_B" : "initial_x");
  if (in.initial_B.defined()) {
    expect_shape(in.initial_B, {batch, groups, n_state}, op, "initial_B", "(B, G, N)");
    expect_like(in.initial_B, x, op, "initial_B");
    expect_shape(in.initial_x, {batch, heads, head_dim}, op, "initial_x", "(B, H, P)");
    expect_like(in.initial_x, x, op, "initial_x");
  }
  SSM_CHECK(in.chunk_size > 0, "{}: argument 'chunk_size' expected a positive integer, got {}", op,
            in.chunk_size);
}

void check_mamba3_scan_values(const Mamba3ScanInputs& in, const char* op) {
  SSM_DISPATCH_FLOAT(in.x.dtype(), op,
                     [&] { check_values_impl<scalar_t>(in.dt, in.A, in.lambda, op); });
}

Mamba3ScanForward mamba3_scan_fwd(const Mamba3ScanInputs& in, bool save_chunk_states) {
  check_mamba3_scan_inputs(in, "mamba3_scan_fwd");
  return SSM_DISPATCH_FLOAT(in.x.dtype(), "mamba3_scan_fwd",
                            [&] { return forward_impl<scalar_t>(in, save_chunk_states); });
}

Mamba3ScanGrads mamba3_scan_bwd(const Mamba3ScanInputs& in, const Tensor& chunk_states,
                                const Tensor& dy, const Tensor& dfinal_state) {
  const char* op = "mamba3_scan_bwd";
  check_mamba3_scan_inputs(in, op);
  const int64_t batch = in.x.size(0), len = in.x.size(1), heads = in.x.size(2);
  const int64_t head_dim = in.x.size(3), n_state = in.B.size(3);
  const int64_t n_chunks = (len + in.chunk_size - 1) / in.chunk_size;
  SSM_CHECK(dy.defined(), "{}: argument 'dy' is required but undefined", op);
  expect_shape(dy, in.x.shape(), op, "dy", "(B, L, H, P)");
  expect_like(dy, in.x, op, "dy");
  SSM_CHECK(chunk_states.defined(), "{}: argument 'chunk_states' is required but undefined", op);
  expect_shape(chunk_states, {batch, heads, n_chunks, head_dim, n_state}, op, "chunk_states",
               "(B, H, ceil(L / chunk_size), P, N)");
  expect_like(chunk_states, in.x, op, "chunk_states");
  if (dfinal_state.defined()) {
    expect_shape(dfinal_state, {batch, heads, head_dim, n_state}, op, "dfinal_state",
                 "(B, H, P, N)");
    expect_like(dfinal_state, in.x, op, "dfinal_state");
  }
  return SSM_DISPATCH_FLOAT(in.x.dtype(), op, [&] {
    return backward_impl<scalar_t>(in, chunk_states, dy, dfinal_state);
  });
}

Tensor mamba3_state_update(Tensor& state, Tensor& prev_B, Tensor& prev_x,
                           const Mamba3StepInputs& in) {
  const char* op = "mamba3_state_update";
  const std::pair<const char*, const Tensor*> required[] = {
      {"state", &state}, {"prev_B", &prev_B},    {"prev_x", &prev_x}, {"x", &in.x}, {"dt", &in.dt},
      {"A", &in.A},      {"lambda", &in.lambda}, {"B", &in.B},        {"C", &in.C}};
  for (const auto& [name, t] : required)
    SSM_CHECK(t->defined(), "{}: argument '{}' is required but undefined", op, name);
  SSM_CHECK(in.x.dim() == 3, "{}: argument 'x' expected shape (B, H, P), got {}", op,
            shape_str(in.x.shape()));
  SSM_CHECK(is_floating(in.x.dtype()), "{}: argument 'x' expected float32 or float64, got {}", op,
            dtype_name(in.x.dtype()));
  const int64_t batch = in.x.size(0), heads = in.x.size(1), head_dim = in.x.size(2);
  SSM_CHECK(in.B.dim() == 3 && in.B.size(1) > 0,
            "{}: argument 'B' expected shape (B, G, N), got {}", op, shape_str(in.B.shape()));
  const int64_t groups = in.B.size(1), n_state = in.B.size(2);
  SSM_CHECK(heads % groups == 0,
            "{}: argument 'B' has G = {} groups, which do not divide the H = {} heads", op, groups,
            heads);
  expect_shape(state, {batch, heads, head_dim, n_state}, op, "state", "(B, H, P, N)");
  expect_shape(prev_B, {batch, groups, n_state}, op, "prev_B", "(B, G, N)");
  expect_shape(prev_x, {batch, heads, head_dim}, op, "prev_x", "(B, H, P)");
  const std::pair<const char*, const Tensor*> in_place[] = {
      {"state", &state}, {"prev_B", &prev_B}, {"prev_x", &prev_x}};
  for (const auto& [name, t] : in_place)
    SSM_CHECK(t->is_contiguous(), "{}: argument '{}' must be contiguous (updated in place)", op,
              name);
  expect_shape(in.dt, {batch, heads}, op, "dt", "(B, H)");
  if (in.A.dim() == 2)
    expect_shape(in.A, {batch, heads}, op, "A", "(B, H) or (H)");
  else
    expect_shape(in.A, {heads}, op, "A", "(H) or (B, H)");
  expect_shape(in.lambda, {batch, heads}, op, "lambda", "(B, H)");
  expect_shape(in.B, {batch, groups, n_state}, op, "B", "(B, G, N)");
  expect_shape(in.C, {batch, groups, n_state}, op, "C", "(B, G, N)");
  if (in.D.defined()) expect_shape(in.D, {heads}, op, "D", "(H)");
  const std::pair<const char*, const Tensor*> all[] = {
      {"state", &state}, {"prev_B", &prev_B},    {"prev_x", &prev_x}, {"x", &in.x}, {"dt", &in.dt},
      {"A", &in.A},      {"lambda", &in.lambda}, {"B", &in.B},        {"C", &in.C}, {"D", &in.D}};
  for (const auto& [name, t] : all)
    if (t->defined()) expect_like(*t, in.x, op, name);
  SSM_DISPATCH_FLOAT(in.x.dtype(), op,
                     [&] { check_values_impl<scalar_t>(in.dt, in.A, in.lambda, op); });
  return SSM_DISPATCH_FLOAT(in.x.dtype(), op,
                            [&] { return step_impl<scalar_t>(state, prev_B, prev_x, in); });
}

}  // namespace ssm::kernels::cpu
