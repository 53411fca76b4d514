// S5 chunked parallel scan, forward and backward (see include/ssm/kernels/s5_scan.h).
//
// Layout of the work: the sequence (in scan order t = 0 .. L−1; position l = t, or L−1−t for
// the reverse direction) is cut into chunks of Q steps. One OpenMP task per (sequence, chunk)
// runs the recurrence over its chunk from a zero state; each step is one row of P complex
// values, and the loop over P is the SIMD loop (split re/im arrays, no aliasing). A short pass
// per sequence then walks the chunk boundaries carrying the true incoming state, and a second
// parallel pass adds a^{k+1} ⊙ (incoming state) to the chunk's k-th row. The carries and the
// powers of a are kept in float64: the correction is then as accurate as the plain sequential
// recurrence even in float32 and for long chunks.
#include "ssm/kernels/s5_scan.h"

#include <omp.h>

#include <algorithm>
#include <complex>
#include <vector>

namespace ssm::kernels::cpu {

namespace {

constexpr int64_t kParallelWork = int64_t{1} << 15;  // B·L·P below this runs on one thread
constexpr int64_t kMinChunk = 64;  // shorter chunks cost more in passes 2–3 than they save

void expect(bool ok, const char* op, const char* arg, const Shape& expected, const char* layout,
            const Tensor& t) {
  SSM_CHECK(ok, "{}: argument '{}' expected shape {} = {}, got {}", op, arg, layout,
            shape_str(expected), shape_str(t.shape()));
}

// Steps per chunk: the whole sequence when the batch alone fills the threads (or the work is
// too small to share), else enough chunks per sequence for every thread to get work.
int64_t pick_chunk_len(int64_t B, int64_t L, int64_t P, int64_t requested) {
  if (requested > 0) return std::min(requested, L);
  const int64_t threads = omp_get_max_threads();
  if (threads <= 1 || B * L * P < kParallelWork || B >= threads) return L;
  const int64_t chunks_per_sequence = (threads + B - 1) / B;
  const int64_t Q = std::max(kMinChunk, (L + chunks_per_sequence - 1) / chunks_per_sequence);
  return std::min(Q, L);
}

// One recurrence step over the P modes: y = a ⊙ prev + u.
template <typename T>
inline void step_row(const T* __restrict ar, const T* __restrict ai, const T* __restrict pr,
                     const T* __restrict pi, const T* __restrict ur, const T* __restrict ui,
                     T* __restrict yr, T* __restrict yi, int64_t P) {
  for (int64_t p = 0; p < P; ++p) {
    yr[p] = ar[p] * pr[p] - ai[p] * pi[p] + ur[p];
    yi[p] = ar[p] * pi[p] + ai[p] * pr[p] + ui[p];
  }
}

// y += w ⊙ s (float64 w, s), then w ← a ⊙ w: the carry's contribution to one row.
template <typename T>
inline void add_carry_row(const double* __restrict ar, const double* __restrict ai,
                          double* __restrict wr, double* __restrict wi, const double* __restrict sr,
                          const double* __restrict si, T* __restrict yr, T* __restrict yi,
                          int64_t P) {
  for (int64_t p = 0; p < P; ++p) {
    yr[p] += static_cast<T>(wr[p] * sr[p] - wi[p] * si[p]);
    yi[p] += static_cast<T>(wr[p] * si[p] + wi[p] * sr[p]);
    const double nr = ar[p] * wr[p] - ai[p] * wi[p];
    wi[p] = ar[p] * wi[p] + ai[p] * wr[p];
    wr[p] = nr;
  }
}

// Where scan step t of sequence b lives, for chunks of Q steps.
struct Geometry {
  int64_t B, L, P, Q, n_chunks;
  bool reverse;
  // Offset of the row at scan step t of sequence b.
  int64_t row(int64_t b, int64_t t) const { return (b * L + (reverse ? L - 1 - t : t)) * P; }
};

Geometry make_geometry(int64_t B, int64_t L, int64_t P, int64_t chunk_len, bool reverse) {
  const int64_t Q = pick_chunk_len(B, L, P, chunk_len);
  return {B, L, P, Q, (L + Q - 1) / Q, reverse};
}

template <typename T>
struct Scan : Geometry {
  const T* ar;  // (P)
  const T* ai;
  const T* ur;  // (B, L, P): the inputs b
  const T* ui;
  T* xr;  // (B, L, P): the states
  T* xi;
};

// Pass 1: chunk c of sequence b from a zero state.
template <typename T>
void scan_chunk_from_zero(const Scan<T>& s, int64_t b, int64_t c) {
  const int64_t t0 = c * s.Q, t1 = std::min(t0 + s.Q, s.L);
  const int64_t first = s.row(b, t0);
  std::copy(s.ur + first, s.ur + first + s.P, s.xr + first);
  std::copy(s.ui + first, s.ui + first + s.P, s.xi + first);
  for (int64_t t = t0 + 1; t < t1; ++t) {
    const int64_t prev = s.row(b, t - 1), cur = s.row(b, t);
    step_row(s.ar, s.ai, s.xr + prev, s.xi + prev, s.ur + cur, s.ui + cur, s.xr + cur, s.xi + cur,
             s.P);
  }
}

template <typename T>
void run_scan(const Scan<T>& s) {
  const int64_t B = s.B, P = s.P, nc = s.n_chunks;
  const bool parallel = B * s.L * P >= kParallelWork;
#pragma omp parallel for schedule(static) if (parallel && B * nc > 1)
  for (int64_t task = 0; task < B * nc; ++task) scan_chunk_from_zero(s, task / nc, task % nc);
  if (nc == 1) return;

  // Pass 2: carry[b, c] = the true state before chunk c (zero for c = 0), in float64.
  std::vector<double> a_re(P), a_im(P), aq_re(P), aq_im(P);
  for (int64_t p = 0; p < P; ++p) {
    a_re[p] = s.ar[p];
    a_im[p] = s.ai[p];
    // a^Q by repeated squaring: every chunk but the last has Q steps, and only those carry out.
    std::complex<double> base(a_re[p], a_im[p]), power(1.0, 0.0);
    for (int64_t e = s.Q; e > 0; e >>= 1) {
      if (e & 1) power *= base;
      base *= base;
    }
    aq_re[p] = power.real();
    aq_im[p] = power.imag();
  }
  std::vector<double> carry_re(B * nc * P, 0.0), carry_im(B * nc * P, 0.0);
#pragma omp parallel for schedule(static) if (parallel && B > 1)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 1; c < nc; ++c) {
      const double* __restrict pr = carry_re.data() + (b * nc + c - 1) * P;
      const double* __restrict pi = carry_im.data() + (b * nc + c - 1) * P;
      double* __restrict cr = carry_re.data() + (b * nc + c) * P;
      double* __restrict ci = carry_im.data() + (b * nc + c) * P;
      const int64_t end = s.row(b, c * s.Q - 1);  // last row of chunk c − 1 (local state)
      for (int64_t p = 0; p < P; ++p) {
        cr[p] = aq_re[p] * pr[p] - aq_im[p] * pi[p] + s.xr[end + p];
        ci[p] = aq_re[p] * pi[p] + aq_im[p] * pr[p] + s.xi[end + p];
      }
    }

    // Pass 3: row k of chunk c gets a^{k+1} ⊙ carry[b, c].
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t task = 0; task < B * (nc - 1); ++task) {
    const int64_t b = task / (nc - 1), c = 1 + task % (nc - 1);
    std::vector<double> w_re(a_re), w_im(a_im);
    const double* sr = carry_re.data() + (b * nc + c) * P;
    const double* si = carry_im.data() + (b * nc + c) * P;
    const int64_t t0 = c * s.Q, t1 = std::min(t0 + s.Q, s.L);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r = s.row(b, t);
      add_carry_row(a_re.data(), a_im.data(), w_re.data(), w_im.data(), sr, si, s.xr + r, s.xi + r,
                    P);
    }
  }
}

template <typename T>
S5ScanResult forward_impl(const Tensor& a_re, const Tensor& a_im, const Tensor& b_re,
                          const Tensor& b_im, bool reverse, int64_t chunk_len) {
  const int64_t B = b_re.size(0), L = b_re.size(1), P = b_re.size(2);
  S5ScanResult out{Tensor::empty({B, L, P}, b_re.dtype()), Tensor::empty({B, L, P}, b_re.dtype())};
  if (B * L * P == 0) return out;
  const Scan<T> s{make_geometry(B, L, P, chunk_len, reverse),
                  a_re.data<T>(),
                  a_im.data<T>(),
                  b_re.data<T>(),
                  b_im.data<T>(),
                  out.x_re.data<T>(),
                  out.x_im.data<T>()};
  run_scan(s);
  return out;
}

// ∂ℒ/∂a = Σ_{b,t} conj(x at scan step t−1) ⊙ δ_t, in float64 with one partial sum per
// (sequence, chunk) task, added in a fixed order (the result does not depend on the threads).
template <typename T>
void accumulate_grad_a(const Geometry& fwd, const T* x_re, const T* x_im, const T* dr, const T* di,
                       double* ga_re, double* ga_im) {
  const int64_t B = fwd.B, P = fwd.P, nc = fwd.n_chunks;
  std::vector<double> part_re(B * nc * P, 0.0), part_im(B * nc * P, 0.0);
#pragma omp parallel for schedule(static) if (B * fwd.L * P >= kParallelWork && B * nc > 1)
  for (int64_t task = 0; task < B * nc; ++task) {
    const int64_t b = task / nc, c = task % nc;
    double* __restrict sr = part_re.data() + task * P;
    double* __restrict si = part_im.data() + task * P;
    const int64_t t0 = std::max<int64_t>(c * fwd.Q, 1), t1 = std::min((c + 1) * fwd.Q, fwd.L);
    for (int64_t t = t0; t < t1; ++t) {
      const T* __restrict xr = x_re + fwd.row(b, t - 1);
      const T* __restrict xi = x_im + fwd.row(b, t - 1);
      const T* __restrict gr = dr + fwd.row(b, t);
      const T* __restrict gi = di + fwd.row(b, t);
      for (int64_t p = 0; p < P; ++p) {
        sr[p] += static_cast<double>(xr[p]) * gr[p] + static_cast<double>(xi[p]) * gi[p];
        si[p] += static_cast<double>(xr[p]) * gi[p] - static_cast<double>(xi[p]) * gr[p];
      }
    }
  }
  for (int64_t task = 0; task < B * nc; ++task)
    for (int64_t p = 0; p < P; ++p) {
      ga_re[p] += part_re[task * P + p];
      ga_im[p] += part_im[task * P + p];
    }
}

template <typename T>
S5ScanGrads backward_impl(const Tensor& a_re, const Tensor& a_im, const Tensor& x_re,
                          const Tensor& x_im, const Tensor& g_re, const Tensor& g_im, bool reverse,
                          int64_t chunk_len) {
  const int64_t B = x_re.size(0), L = x_re.size(1), P = x_re.size(2);
  S5ScanGrads out{Tensor::zeros({P}, a_re.dtype()), Tensor::zeros({P}, a_re.dtype()),
                  Tensor::empty({B, L, P}, x_re.dtype()), Tensor::empty({B, L, P}, x_re.dtype())};
  if (B * L * P == 0) return out;
  // δ: the recurrence with conj(a), run in the opposite direction over g.
  std::vector<T> conj_a_im(P);
  const T* ai = a_im.data<T>();
  for (int64_t p = 0; p < P; ++p) conj_a_im[p] = -ai[p];
  const Scan<T> adjoint{make_geometry(B, L, P, chunk_len, !reverse),
                        a_re.data<T>(),
                        conj_a_im.data(),
                        g_re.data<T>(),
                        g_im.data<T>(),
                        out.b_re.data<T>(),
                        out.b_im.data<T>()};
  run_scan(adjoint);
  // x is read at the previous step of the forward's scan order.
  std::vector<double> ga_re(P, 0.0), ga_im(P, 0.0);
  accumulate_grad_a(make_geometry(B, L, P, chunk_len, reverse), x_re.data<T>(), x_im.data<T>(),
                    out.b_re.data<T>(), out.b_im.data<T>(), ga_re.data(), ga_im.data());
  for (int64_t p = 0; p < P; ++p) {
    out.a_re.data<T>()[p] = static_cast<T>(ga_re[p]);
    out.a_im.data<T>()[p] = static_cast<T>(ga_im[p]);
  }
  return out;
}

}  // namespace

void check_s5_scan_inputs(const Tensor& a_re, const Tensor& a_im, const Tensor& b_re,
                          const Tensor& b_im, int64_t chunk_len, const char* op) {
  SSM_CHECK(b_re.defined() && b_re.dim() == 3,
            "{}: argument 'bu_re' expected shape (B, L, P), got {}", op,
            b_re.defined() ? shape_str(b_re.shape()) : "an undefined tensor");
  SSM_CHECK(is_floating(b_re.dtype()), "{}: argument 'bu_re' expected float32 or float64, got {}",
            op, dtype_name(b_re.dtype()));
  const int64_t P = b_re.size(2);
  const std::pair<const Tensor*, const char*> vecs[] = {{&a_re, "a_re"}, {&a_im, "a_im"}};
  for (auto [t, name] : vecs) {
    SSM_CHECK(t->defined(), "{}: argument '{}' is undefined", op, name);
    expect(t->shape() == Shape{P}, op, name, {P}, "(P)", *t);
  }
  SSM_CHECK(b_im.defined(), "{}: argument 'bu_im' is undefined", op);
  expect(b_im.shape() == b_re.shape(), op, "bu_im", b_re.shape(), "(B, L, P)", b_im);
  const std::pair<const Tensor*, const char*> all[] = {
      {&a_re, "a_re"}, {&a_im, "a_im"}, {&b_im, "bu_im"}};
  for (auto [t, name] : all) {
    SSM_CHECK(t->dtype() == b_re.dtype(),
              "{}: argument '{}' expected dtype {} (the dtype of bu_re), got {}", op, name,
              dtype_name(b_re.dtype()), dtype_name(t->dtype()));
    SSM_CHECK(t->device() == Device::CPU, "{}: argument '{}' expected a CPU tensor, got {}", op,
              name, device_name(t->device()));
  }
  SSM_CHECK(chunk_len >= 0, "{}: argument 'chunk_len' expected ≥ 0 (0 = automatic), got {}", op,
            chunk_len);
}

S5ScanResult s5_scan_fwd(const Tensor& a_re, const Tensor& a_im, const Tensor& b_re,
                         const Tensor& b_im, bool reverse, int64_t chunk_len) {
  check_s5_scan_inputs(a_re, a_im, b_re, b_im, chunk_len, "s5_scan_fwd");
  return SSM_DISPATCH_FLOAT(b_re.dtype(), "s5_scan_fwd", [&] {
    return forward_impl<scalar_t>(a_re.contiguous(), a_im.contiguous(), b_re.contiguous(),
                                  b_im.contiguous(), reverse, chunk_len);
  });
}

S5ScanGrads s5_scan_bwd(const Tensor& a_re, const Tensor& a_im, const Tensor& x_re,
                        const Tensor& x_im, const Tensor& g_re, const Tensor& g_im, bool reverse,
                        int64_t chunk_len) {
  check_s5_scan_inputs(a_re, a_im, x_re, x_im, chunk_len, "s5_scan_bwd");
  SSM_CHECK(g_re.shape() == x_re.shape() && g_im.shape() == x_re.shape(),
            "s5_scan_bwd: argument 'grad_x' expected shape (B, L, P) = {}, got {} and {}",
            shape_str(x_re.shape()), shape_str(g_re.shape()), shape_str(g_im.shape()));
  SSM_CHECK(g_re.dtype() == x_re.dtype() && g_im.dtype() == x_re.dtype(),
            "s5_scan_bwd: argument 'grad_x' expected dtype {}, got {}", dtype_name(x_re.dtype()),
            dtype_name(g_re.dtype()));
  return SSM_DISPATCH_FLOAT(x_re.dtype(), "s5_scan_bwd", [&] {
    return backward_impl<scalar_t>(a_re.contiguous(), a_im.contiguous(), x_re.contiguous(),
                                   x_im.contiguous(), g_re.contiguous(), g_im.contiguous(), reverse,
                                   chunk_len);
  });
}

}  // namespace ssm::kernels::cpu
