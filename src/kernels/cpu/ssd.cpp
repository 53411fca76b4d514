// SSD (Mamba-2) on the CPU: the chunked algorithm forward and backward, the sequential
// recurrence, and the decode step.
//
// The chunked work is split into phases whose tasks write disjoint memory:
//   1. chunk-local cumulative decays acum_i = Σ_{k ≤ i in chunk} dt_k A_h       over (b, h)
//   2. each chunk's own end state Xᵀ diag(exp(acum_last − acum) dt) B           over (b, c, h)
//   3. the short scan over chunks turning those into the state entering each    over (b, h)
//      chunk (and the final state)
//   4. outputs: (C Bᵀ ∘ Λ ∘ dt) X + diag(exp(acum)) C S_inᵀ + D x              over (b, c, g)
// Tasks over (b, c, g) handle all heads of a group, so C Bᵀ (shared by the group) is computed
// once and the backward can sum the group's dB, dC rows of its chunk without races.
//
// Backward, per chunk with S_in (state entering) and dS_out (gradient of the state leaving):
//   dS_in   = exp(acum_last) dS_out + Σ_i exp(acum_i) dy_i C_iᵀ     (reverse scan, phase 5)
//   through y_i += exp(acum_i) S_in C_i:  dC_i += exp(acum_i) S_inᵀ dy_i,
//                                         dacum_i += exp(acum_i) dy_i·(S_in C_i)
//   through S_out = exp(acum_last) S_in + Σ_j w_j dt_j x_j B_jᵀ (w_j = exp(acum_last − acum_j)):
//       dx_j += w_j dt_j dS_out B_j, dB_j += w_j dt_j dS_outᵀ x_j, and the decay/step terms
//   through y = M x, M_ij = (C_i·B_j) exp(acum_i − acum_j) dt_j (j ≤ i):
//       dx += Mᵀ dy, dM = dy xᵀ, d(C Bᵀ) = dM ∘ exp(·) dt, dacum_i += Σ_j dM∘M, dacum_j −= …
//   then da_k = Σ_{i ≥ k} dacum_i, ddt_k += A_h da_k, dA_h += Σ dt_k da_k.
#include "ssm/kernels/ssd.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/scan_math.h"

namespace ssm::kernels::cpu {

namespace {

using detail::uninitialized_buffer;
using detail::vexp;
template <typename T>
using Buffer = std::unique_ptr<T[]>;

// Below this many (b, l, h, p, n) elements a call runs on one thread.
constexpr int64_t kParallelThreshold = 1 << 15;

// ------------------------------------------------------------------ BLAS

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
          int64_t ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// The GEMMs here are small (chunk-sized) and already run inside OpenMP tasks: a pthread
// OpenBLAS's own thread pool would only contend with ours, so it is held at one thread for the
// call. An OpenMP OpenBLAS needs nothing (inside a parallel region it runs on the calling
// thread), and there setting its thread count would set ours too (omp_set_num_threads).
class SingleThreadedBlas {
 public:
  SingleThreadedBlas()
      : previous_(openblas_get_parallel() == kPthreads ? openblas_get_num_threads() : 1) {
    if (previous_ != 1) openblas_set_num_threads(1);
  }
  ~SingleThreadedBlas() {
    if (previous_ != 1) openblas_set_num_threads(previous_);
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  static constexpr int kPthreads = 1;  // openblas_get_parallel(): 0 serial, 1 pthreads, 2 OpenMP
  int previous_;
};

// ------------------------------------------------------------------ validation

void expect_shape(const Tensor& t, const Shape& expected, const char* op, const char* arg,
                  const char* layout) {
  SSM_CHECK(t.shape() == expected, "{}: argument '{}' expected shape {} = {}, got {}", op, arg,
            layout, shape_str(expected), shape_str(t.shape()));
}

void expect_like(const Tensor& t, const Tensor& x, const char* op, const char* arg) {
  SSM_CHECK(t.dtype() == x.dtype(), "{}: argument '{}' expected dtype {} (the dtype of x), got {}",
            op, arg, dtype_name(x.dtype()), dtype_name(t.dtype()));
  // One device for all (the CUDA op shares this validation; the CPU kernels reject device
  // memory when they read it).
  SSM_CHECK(t.device() == x.device(),
            "{}: argument '{}' expected a {} tensor (the device of x), got {}", op, arg,
            device_name(x.device()), device_name(t.device()));
}

// ------------------------------------------------------------------ problem description

template <typename T>
struct SsdProblem {
  int64_t batch, len, heads, head_dim, groups, state, chunk, n_chunks;
  const T* x;   // (B, L, H, P)
  const T* dt;  // (B, L, H)
  const T* A;   // (H)
  const T* B;   // (B, L, G, N)
  const T* C;   // (B, L, G, N)
  const T* D;   // (H) or null
  const T* h0;  // (B, H, P, N) or null

  int64_t heads_per_group() const { return heads / groups; }
  int64_t x_ld() const { return heads * head_dim; }  // step stride of x, y, dx, dy
  int64_t bc_ld() const { return groups * state; }   // step stride of B, C
  int64_t x_offset(int64_t b, int64_t l, int64_t h) const {
    return ((b * len + l) * heads + h) * head_dim;
  }
  int64_t bc_offset(int64_t b, int64_t l, int64_t g) const {
    return ((b * len + l) * groups + g) * state;
  }
  T step(int64_t b, int64_t l, int64_t h) const { return dt[(b * len + l) * heads + h]; }
  int64_t chunk_steps(int64_t c) const { return std::min(len, (c + 1) * chunk) - c * chunk; }
  // Is the state entering chunk c possibly non-zero?
  bool has_state_in(int64_t c) const { return c > 0 || h0 != nullptr; }
  int64_t plane() const { return head_dim * state; }  // P·N, one state
};

Tensor contiguous_or_empty(const Tensor& t) {
  return t.defined() ? t.contiguous() : Tensor();
}

struct SsdContiguous {
  Tensor x, dt, A, B, C, D, h0;
  explicit SsdContiguous(const SsdInputs& in)
      : x(in.x.contiguous()),
        dt(in.dt.contiguous()),
        A(in.A.contiguous()),
        B(in.B.contiguous()),
        C(in.C.contiguous()),
        D(contiguous_or_empty(in.D)),
        h0(contiguous_or_empty(in.initial_state)) {}
};

template <typename T>
SsdProblem<T> make_problem(const SsdContiguous& t, int64_t chunk) {
  SsdProblem<T> p;
  p.batch = t.x.size(0);
  p.len = t.x.size(1);
  p.heads = t.x.size(2);
  p.head_dim = t.x.size(3);
  p.groups = t.B.size(2);
  p.state = t.B.size(3);
  p.chunk = chunk;
  p.n_chunks = (p.len + chunk - 1) / chunk;
  p.x = t.x.data<T>();
  p.dt = t.dt.data<T>();
  p.A = t.A.data<T>();
  p.B = t.B.data<T>();
  p.C = t.C.data<T>();
  p.D = t.D.defined() ? t.D.data<T>() : nullptr;
  p.h0 = t.h0.defined() ? t.h0.data<T>() : nullptr;
  return p;
}

template <typename T>
bool worth_threads(const SsdProblem<T>& p) {
  return p.batch * p.len * p.heads * p.head_dim * p.state > kParallelThreshold;
}

// ------------------------------------------------------------------ shared phases 1–3

// acum[(b·H + h)·L + l]: cumulative dt·A from the start of l's chunk up to and including l.
template <typename T>
Buffer<T> chunk_cumulative_decay(const SsdProblem<T>& p) {
  Buffer<T> acum = uninitialized_buffer<T>(p.batch * p.heads * p.len);
#pragma omp parallel for if (worth_threads(p))
  for (int64_t bh = 0; bh < p.batch * p.heads; ++bh) {
    const int64_t b = bh / p.heads, h = bh % p.heads;
    T* out = acum.get() + bh * p.len;
    for (int64_t c = 0; c < p.n_chunks; ++c) {
      T sum = 0;
      for (int64_t l = c * p.chunk; l < c * p.chunk + p.chunk_steps(c); ++l) {
        sum += p.step(b, l, h) * p.A[h];
        out[l] = sum;
      }
    }
  }
  return acum;
}

// states[((b·H + h)·n_chunks + c)·P·N] = the state entering chunk c; final_state (B, H, P, N).
template <typename T>
Buffer<T> chunk_input_states(const SsdProblem<T>& p, const T* acum, T* final_state) {
  const int64_t PN = p.plane(), N = p.state, P = p.head_dim;
  Buffer<T> states = uninitialized_buffer<T>(p.batch * p.heads * p.n_chunks * PN);
  const bool parallel = worth_threads(p);

  // Each chunk's own contribution to its end state: Xᵀ · (w ∘ B), w_j = exp(last − acum_j) dt_j.
#pragma omp parallel if (parallel)
  {
    std::vector<T> weighted_B(p.chunk * N);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < p.batch * p.n_chunks * p.heads; ++task) {
      const int64_t h = task % p.heads, c = (task / p.heads) % p.n_chunks;
      const int64_t b = task / (p.heads * p.n_chunks);
      const int64_t g = h / p.heads_per_group(), l0 = c * p.chunk, q = p.chunk_steps(c);
      const T* ac = acum + (b * p.heads + h) * p.len + l0;
      const T last = ac[q - 1];
      for (int64_t j = 0; j < q; ++j) {
        const T w = std::exp(last - ac[j]) * p.step(b, l0 + j, h);
        const T* __restrict Bj = p.B + p.bc_offset(b, l0 + j, g);
        T* __restrict out = weighted_B.data() + j * N;
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) out[n] = w * Bj[n];
      }
      gemm(true, false, P, N, q, T(1), p.x + p.x_offset(b, l0, h), p.x_ld(), weighted_B.data(), N,
           T(0), states.get() + ((b * p.heads + h) * p.n_chunks + c) * PN, N);
    }
  }

  // Pass the states along the chunks: S_in(c+1) = exp(acum_last(c)) S_in(c) + local(c).
#pragma omp parallel if (parallel)
  {
    std::vector<T> running(PN);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < p.batch * p.heads; ++bh) {
      T* __restrict run = running.data();
      if (p.h0)
        std::copy(p.h0 + bh * PN, p.h0 + (bh + 1) * PN, run);
      else
        std::fill(run, run + PN, T(0));
      for (int64_t c = 0; c < p.n_chunks; ++c) {
        T* __restrict slot = states.get() + (bh * p.n_chunks + c) * PN;
        const T decay = std::exp(acum[bh * p.len + c * p.chunk + p.chunk_steps(c) - 1]);
#pragma omp simd
        for (int64_t i = 0; i < PN; ++i) {
          const T local = slot[i];
          slot[i] = run[i];
          run[i] = decay * run[i] + local;
        }
      }
      std::copy(run, run + PN, final_state + bh * PN);
    }
  }
  return states;
}

// M_ij = S_ij · exp(acum_i − acum_j) · dt_j for j ≤ i, 0 above the diagonal; also keeps
// E_ij = exp(acum_i − acum_j) when `decay_out` is given (the backward needs it).
template <typename T>
void masked_mixing(int64_t q, const T* __restrict S, const T* __restrict ac,
                   const T* __restrict dtc, T* __restrict M, T* __restrict decay_out) {
  for (int64_t i = 0; i < q; ++i) {
    const T* __restrict Si = S + i * q;
    T* __restrict Mi = M + i * q;
    const T ai = ac[i];
    if (decay_out) {
      T* __restrict Ei = decay_out + i * q;
#pragma omp simd
      for (int64_t j = 0; j <= i; ++j) {
        const T e = vexp(ai - ac[j]);
        Ei[j] = e;
        Mi[j] = Si[j] * e * dtc[j];
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j <= i; ++j) Mi[j] = Si[j] * vexp(ai - ac[j]) * dtc[j];
    }
    std::fill(Mi + i + 1, Mi + q, T(0));
  }
}

// ------------------------------------------------------------------ chunked forward

template <typename T>
SsdOutputs chunked_forward_impl(const SsdInputs& in) {
  SingleThreadedBlas blas_guard;
  const SsdContiguous t(in);
  const SsdProblem<T> p = make_problem<T>(t, in.chunk_size);
  const int64_t N = p.state, P = p.head_dim, Q = p.chunk, PN = p.plane();
  SsdOutputs r;
  r.y = Tensor::empty({p.batch, p.len, p.heads, P}, t.x.dtype());
  r.final_state = Tensor::empty({p.batch, p.heads, P, N}, t.x.dtype());
  T* y = r.y.data<T>();

  const Buffer<T> acum_buffer = chunk_cumulative_decay(p);
  const T* acum = acum_buffer.get();
  const Buffer<T> states = chunk_input_states(p, acum, r.final_state.data<T>());

#pragma omp parallel if (worth_threads(p))
  {
    std::vector<T> S(Q * Q), M(Q * Q), decayed_C(Q * N), dtc(Q);
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < p.batch * p.n_chunks * p.groups; ++task) {
      const int64_t g = task % p.groups, c = (task / p.groups) % p.n_chunks;
      const int64_t b = task / (p.groups * p.n_chunks);
      const int64_t l0 = c * p.chunk, q = p.chunk_steps(c);
      const T* Bc = p.B + p.bc_offset(b, l0, g);
      const T* Cc = p.C + p.bc_offset(b, l0, g);
      gemm(false, true, q, q, N, T(1), Cc, p.bc_ld(), Bc, p.bc_ld(), T(0), S.data(), q);
      for (int64_t h = g * p.heads_per_group(); h < (g + 1) * p.heads_per_group(); ++h) {
        const T* ac = acum + (b * p.heads + h) * p.len + l0;
        for (int64_t j = 0; j < q; ++j) dtc[j] = p.step(b, l0 + j, h);
        masked_mixing(q, S.data(), ac, dtc.data(), M.data(), static_cast<T*>(nullptr));
        const T* X = p.x + p.x_offset(b, l0, h);
        T* Y = y + p.x_offset(b, l0, h);
        gemm(false, false, q, P, q, T(1), M.data(), q, X, p.x_ld(), T(0), Y, p.x_ld());
        if (p.has_state_in(c)) {
          for (int64_t i = 0; i < q; ++i) {
            const T e = std::exp(ac[i]);
            const T* __restrict Ci = Cc + i * p.bc_ld();
            T* __restrict out = decayed_C.data() + i * N;
#pragma omp simd
            for (int64_t n = 0; n < N; ++n) out[n] = e * Ci[n];
          }
          const T* s_in = states.get() + ((b * p.heads + h) * p.n_chunks + c) * PN;
          gemm(false, true, q, P, N, T(1), decayed_C.data(), N, s_in, N, T(1), Y, p.x_ld());
        }
        if (p.D) {
          const T Dh = p.D[h];
          for (int64_t i = 0; i < q; ++i) {
            const T* __restrict Xi = X + i * p.x_ld();
            T* __restrict Yi = Y + i * p.x_ld();
#pragma omp simd
            for (int64_t k = 0; k < P; ++k) Yi[k] += Dh * Xi[k];
          }
        }
      }
    }
  }
  return r;
}

// ------------------------------------------------------------------ sequential forward

template <typename T>
SsdOutputs sequential_impl(const SsdInputs& in) {
  const SsdContiguous t(in);
  const SsdProblem<T> p = make_problem<T>(t, 1);
  const int64_t N = p.state, P = p.head_dim, PN = p.plane();
  SsdOutputs r;
  r.y = Tensor::empty({p.batch, p.len, p.heads, P}, t.x.dtype());
  r.final_state = Tensor::empty({p.batch, p.heads, P, N}, t.x.dtype());
  T* y = r.y.data<T>();
  T* final_state = r.final_state.data<T>();

#pragma omp parallel for if (worth_threads(p))
  for (int64_t bh = 0; bh < p.batch * p.heads; ++bh) {
    const int64_t b = bh / p.heads, h = bh % p.heads, g = h / p.heads_per_group();
    T* __restrict S = final_state + bh * PN;  // the running state lives in the output
    if (p.h0)
      std::copy(p.h0 + bh * PN, p.h0 + (bh + 1) * PN, S);
    else
      std::fill(S, S + PN, T(0));
    const T Dh = p.D ? p.D[h] : T(0);
    for (int64_t l = 0; l < p.len; ++l) {
      const T dt = p.step(b, l, h);
      const T decay = std::exp(dt * p.A[h]);
      const T* __restrict Bl = p.B + p.bc_offset(b, l, g);
      const T* __restrict Cl = p.C + p.bc_offset(b, l, g);
      const T* __restrict xl = p.x + p.x_offset(b, l, h);
      T* __restrict yl = y + p.x_offset(b, l, h);
      for (int64_t k = 0; k < P; ++k) {
        T* __restrict Sk = S + k * N;
        const T dtx = dt * xl[k];
        T acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t n = 0; n < N; ++n) {
          const T s = decay * Sk[n] + dtx * Bl[n];
          Sk[n] = s;
          acc += s * Cl[n];
        }
        yl[k] = acc + Dh * xl[k];
      }
    }
  }
  return r;
}

// ------------------------------------------------------------------ chunked backward

// Per-thread buffers of the backward's per-chunk task.
template <typename T>
struct ChunkScratch {
  std::vector<T> S, dS, M, E, dM, CS, dYS, BdS, wX, dacum, ddt, dtc;
  ChunkScratch(int64_t Q, int64_t P, int64_t N)
      : S(Q * Q),
        dS(Q * Q),
        M(Q * Q),
        E(Q * Q),
        dM(Q * Q),
        CS(Q * P),
        dYS(Q * N),
        BdS(Q * P),
        wX(Q * P),
        dacum(Q),
        ddt(Q),
        dtc(Q) {}
};

template <typename T>
T dot(const T* __restrict a, const T* __restrict b, int64_t n) {
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

// Gradients of one head's part of one chunk. Writes dx rows and ddt entries of (b, chunk, h),
// adds into the chunk's dB, dC rows and into ws.dS (summed over the group's heads).
template <typename T>
void backward_chunk_head(const SsdProblem<T>& p, const T* acum, const T* s_in, const T* ds_out,
                         const T* dy, int64_t b, int64_t c, int64_t h, ChunkScratch<T>& ws, T* dx,
                         T* ddt_out, T* dB, T* dC, T& dA_part, T& dD_part) {
  const int64_t N = p.state, P = p.head_dim, PN = p.plane();
  const int64_t g = h / p.heads_per_group(), l0 = c * p.chunk, q = p.chunk_steps(c);
  const int64_t ld = p.x_ld(), bc_ld = p.bc_ld();
  const T* X = p.x + p.x_offset(b, l0, h);
  const T* dY = dy + p.x_offset(b, l0, h);
  T* dX = dx + p.x_offset(b, l0, h);
  const T* Bc = p.B + p.bc_offset(b, l0, g);
  const T* Cc = p.C + p.bc_offset(b, l0, g);
  T* dBc = dB + p.bc_offset(b, l0, g);
  T* dCc = dC + p.bc_offset(b, l0, g);
  const T* ac = acum + (b * p.heads + h) * p.len + l0;
  const T last = ac[q - 1];
  T* __restrict dacum = ws.dacum.data();
  T* __restrict ddt = ws.ddt.data();
  T* __restrict dtc = ws.dtc.data();
  for (int64_t j = 0; j < q; ++j) {
    dtc[j] = p.step(b, l0 + j, h);
    dacum[j] = 0;
    ddt[j] = 0;
  }

  // Skip term y += D x: dD, and dx starts as D dy.
  const T Dh = p.D ? p.D[h] : T(0);
  T dD = 0;
  for (int64_t i = 0; i < q; ++i) {
    const T* __restrict dYi = dY + i * ld;
    T* __restrict dXi = dX + i * ld;
    dD += dot(dYi, X + i * ld, P);
#pragma omp simd
    for (int64_t k = 0; k < P; ++k) dXi[k] = Dh * dYi[k];
  }
  dD_part = dD;

  // State → output term y_i += exp(acum_i) S_in C_i.
  if (p.has_state_in(c)) {
    gemm(false, true, q, P, N, T(1), Cc, bc_ld, s_in, N, T(0), ws.CS.data(), P);  // C S_inᵀ
    gemm(false, false, q, N, P, T(1), dY, ld, s_in, N, T(0), ws.dYS.data(), N);   // dY S_in
    for (int64_t i = 0; i < q; ++i) {
      const T e = std::exp(ac[i]);
      dacum[i] += e * dot(dY + i * ld, ws.CS.data() + i * P, P);
      const T* __restrict src = ws.dYS.data() + i * N;
      T* __restrict dCi = dCc + i * bc_ld;
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) dCi[n] += e * src[n];
    }
    dacum[q - 1] += std::exp(last) * dot(ds_out, s_in, PN);
  }

  // Chunk end state S_out = exp(last) S_in + Σ_j w_j dt_j x_j B_jᵀ.
  gemm(false, true, q, P, N, T(1), Bc, bc_ld, ds_out, N, T(0), ws.BdS.data(), P);  // B dS_outᵀ
  for (int64_t j = 0; j < q; ++j) {
    const T w = std::exp(last - ac[j]);
    const T wdt = w * dtc[j];
    const T* __restrict BdSj = ws.BdS.data() + j * P;
    const T* __restrict Xj = X + j * ld;
    T* __restrict dXj = dX + j * ld;
    T* __restrict wXj = ws.wX.data() + j * P;
    const T dwdt = dot(BdSj, Xj, P);  // gradient of w_j dt_j
#pragma omp simd
    for (int64_t k = 0; k < P; ++k) {
      dXj[k] += wdt * BdSj[k];
      wXj[k] = wdt * Xj[k];
    }
    ddt[j] += dwdt * w;
    dacum[q - 1] += dwdt * wdt;
    dacum[j] -= dwdt * wdt;
  }
  gemm(false, false, q, N, P, T(1), ws.wX.data(), P, ds_out, N, T(1), dBc, bc_ld);

  // Intra-chunk term y = M x with M = (C Bᵀ) ∘ E ∘ dt (lower triangle).
  masked_mixing(q, ws.S.data(), ac, dtc, ws.M.data(), ws.E.data());
  gemm(true, false, q, P, q, T(1), ws.M.data(), q, dY, ld, T(1), dX, ld);  // dx += Mᵀ dy
  gemm(false, true, q, q, P, T(1), dY, ld, X, ld, T(0), ws.dM.data(), q);  // dM = dy xᵀ
  for (int64_t i = 0; i < q; ++i) {
    const T* __restrict dMi = ws.dM.data() + i * q;
    const T* __restrict Mi = ws.M.data() + i * q;
    const T* __restrict Ei = ws.E.data() + i * q;
    const T* __restrict Si = ws.S.data() + i * q;
    T* __restrict dSi = ws.dS.data() + i * q;
    T row = 0;
#pragma omp simd reduction(+ : row)
    for (int64_t j = 0; j <= i; ++j) {
      const T dm = dMi[j];
      const T through_decay = dm * Mi[j];  // gradient of acum_i − acum_j
      dSi[j] += dm * Ei[j] * dtc[j];
      ddt[j] += dm * Si[j] * Ei[j];
      dacum[j] -= through_decay;
      row += through_decay;
    }
    dacum[i] += row;
  }

  // acum_i = Σ_{k ≤ i} dt_k A_h within the chunk.
  T suffix = 0, dA = 0;
  for (int64_t k = q - 1; k >= 0; --k) {
    suffix += dacum[k];
    ddt[k] += p.A[h] * suffix;
    dA += dtc[k] * suffix;
    ddt_out[(b * p.len + l0 + k) * p.heads + h] = ddt[k];
  }
  dA_part = dA;
}

template <typename T>
SsdGrads backward_impl(const SsdInputs& in, const Tensor& dy_in, const Tensor& dfinal_in) {
  SingleThreadedBlas blas_guard;
  const SsdContiguous t(in);
  const SsdProblem<T> p = make_problem<T>(t, in.chunk_size);
  const Tensor dy_t = dy_in.contiguous();
  const Tensor dfinal_t = contiguous_or_empty(dfinal_in);
  const T* dy = dy_t.data<T>();
  const int64_t N = p.state, P = p.head_dim, Q = p.chunk, PN = p.plane();
  const DType dtype = t.x.dtype();
  const bool parallel = worth_threads(p);

  const Buffer<T> acum_buffer = chunk_cumulative_decay(p);
  const T* acum = acum_buffer.get();
  const Buffer<T> final_state = uninitialized_buffer<T>(p.batch * p.heads * PN);
  const Buffer<T> states = chunk_input_states(p, acum, final_state.get());

  // Phase 4: each chunk's outputs' pull on its incoming state, Σ_i exp(acum_i) dy_i C_iᵀ.
  Buffer<T> dstates = uninitialized_buffer<T>(p.batch * p.heads * p.n_chunks * PN);
#pragma omp parallel if (parallel)
  {
    std::vector<T> decayed_C(Q * N);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < p.batch * p.n_chunks * p.heads; ++task) {
      const int64_t h = task % p.heads, c = (task / p.heads) % p.n_chunks;
      const int64_t b = task / (p.heads * p.n_chunks);
      const int64_t g = h / p.heads_per_group(), l0 = c * p.chunk, q = p.chunk_steps(c);
      const T* ac = acum + (b * p.heads + h) * p.len + l0;
      for (int64_t i = 0; i < q; ++i) {
        const T e = std::exp(ac[i]);
        const T* __restrict Ci = p.C + p.bc_offset(b, l0 + i, g);
        T* __restrict out = decayed_C.data() + i * N;
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) out[n] = e * Ci[n];
      }
      gemm(true, false, P, N, q, T(1), dy + p.x_offset(b, l0, h), p.x_ld(), decayed_C.data(), N,
           T(0), dstates.get() + ((b * p.heads + h) * p.n_chunks + c) * PN, N);
    }
  }

  // Phase 5: reverse scan. Afterwards dstates[c] = gradient of the state leaving chunk c.
  SsdGrads grads;
  if (p.h0) grads.dinitial_state = Tensor::empty({p.batch, p.heads, P, N}, dtype);
  const T* dfinal = dfinal_t.defined() ? dfinal_t.data<T>() : nullptr;
#pragma omp parallel if (parallel)
  {
    std::vector<T> running(PN);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < p.batch * p.heads; ++bh) {
      T* __restrict run = running.data();
      if (dfinal)
        std::copy(dfinal + bh * PN, dfinal + (bh + 1) * PN, run);
      else
        std::fill(run, run + PN, T(0));
      for (int64_t c = p.n_chunks - 1; c >= 0; --c) {
        T* __restrict slot = dstates.get() + (bh * p.n_chunks + c) * PN;
        const T decay = std::exp(acum[bh * p.len + c * p.chunk + p.chunk_steps(c) - 1]);
#pragma omp simd
        for (int64_t i = 0; i < PN; ++i) {
          const T from_outputs = slot[i];
          slot[i] = run[i];
          run[i] = decay * run[i] + from_outputs;
        }
      }
      if (p.h0) std::copy(run, run + PN, grads.dinitial_state.data<T>() + bh * PN);
    }
  }

  // Phase 6: everything else, per (b, chunk, group).
  grads.dx = Tensor::empty(t.x.shape(), dtype);
  grads.ddt = Tensor::empty(t.dt.shape(), dtype);
  grads.dB = Tensor::zeros(t.B.shape(), dtype);
  grads.dC = Tensor::zeros(t.C.shape(), dtype);
  T* dx = grads.dx.data<T>();
  T* ddt = grads.ddt.data<T>();
  T* dB = grads.dB.data<T>();
  T* dC = grads.dC.data<T>();
  std::vector<T> dA_parts(p.batch * p.n_chunks * p.heads), dD_parts(dA_parts.size());
#pragma omp parallel if (parallel)
  {
    ChunkScratch<T> ws(Q, P, N);
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < p.batch * p.n_chunks * p.groups; ++task) {
      const int64_t g = task % p.groups, c = (task / p.groups) % p.n_chunks;
      const int64_t b = task / (p.groups * p.n_chunks);
      const int64_t l0 = c * p.chunk, q = p.chunk_steps(c);
      const T* Bc = p.B + p.bc_offset(b, l0, g);
      const T* Cc = p.C + p.bc_offset(b, l0, g);
      gemm(false, true, q, q, N, T(1), Cc, p.bc_ld(), Bc, p.bc_ld(), T(0), ws.S.data(), q);
      std::fill(ws.dS.begin(), ws.dS.begin() + q * q, T(0));
      for (int64_t h = g * p.heads_per_group(); h < (g + 1) * p.heads_per_group(); ++h) {
        const int64_t slot = ((b * p.heads + h) * p.n_chunks + c) * PN;
        const int64_t part = (b * p.n_chunks + c) * p.heads + h;
        backward_chunk_head(p, acum, states.get() + slot, dstates.get() + slot, dy, b, c, h, ws, dx,
                            ddt, dB, dC, dA_parts[part], dD_parts[part]);
      }
      // C Bᵀ is shared by the group: dC += dS B, dB += dSᵀ C.
      gemm(false, false, q, N, q, T(1), ws.dS.data(), q, Bc, p.bc_ld(), T(1),
           dC + p.bc_offset(b, l0, g), p.bc_ld());
      gemm(true, false, q, N, q, T(1), ws.dS.data(), q, Cc, p.bc_ld(), T(1),
           dB + p.bc_offset(b, l0, g), p.bc_ld());
    }
  }

  grads.dA = Tensor::zeros({p.heads}, dtype);
  T* dA = grads.dA.data<T>();
  T* dD = nullptr;
  if (p.D) {
    grads.dD = Tensor::zeros({p.heads}, dtype);
    dD = grads.dD.data<T>();
  }
  for (int64_t bc = 0; bc < p.batch * p.n_chunks; ++bc)
    for (int64_t h = 0; h < p.heads; ++h) {
      dA[h] += dA_parts[bc * p.heads + h];
      if (dD) dD[h] += dD_parts[bc * p.heads + h];
    }
  return grads;
}

// ------------------------------------------------------------------ decode step

template <typename T>
Tensor step_impl(Tensor& state, const SsdStepInputs& in) {
  const Tensor x = in.x.contiguous(), dt = in.dt.contiguous(), A = in.A.contiguous();
  const Tensor Bm = in.B.contiguous(), Cm = in.C.contiguous();
  const Tensor D = contiguous_or_empty(in.D);
  const int64_t batch = x.size(0), heads = x.size(1), P = x.size(2);
  const int64_t groups = Bm.size(1), N = Bm.size(2), per_group = heads / groups;
  Tensor y = Tensor::empty({batch, heads, P}, x.dtype());
  const T* px = x.data<T>();
  const T* pdt = dt.data<T>();
  const T* pA = A.data<T>();
  const T* pB = Bm.data<T>();
  const T* pC = Cm.data<T>();
  const T* pD = D.defined() ? D.data<T>() : nullptr;
  T* pS = state.data<T>();
  T* py = y.data<T>();
#pragma omp parallel for if (batch * heads * P * N > kParallelThreshold)
  for (int64_t bh = 0; bh < batch * heads; ++bh) {
    const int64_t b = bh / heads, h = bh % heads;
    const int64_t bg = b * groups + h / per_group;
    const T step = pdt[bh];
    const T decay = std::exp(step * pA[h]);
    const T* __restrict Bv = pB + bg * N;
    const T* __restrict Cv = pC + bg * N;
    const T* __restrict xv = px + bh * P;
    T* __restrict yv = py + bh * P;
    for (int64_t k = 0; k < P; ++k) {
      T* __restrict Sk = pS + (bh * P + k) * N;
      const T dtx = step * xv[k];
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t n = 0; n < N; ++n) {
        const T s = decay * Sk[n] + dtx * Bv[n];
        Sk[n] = s;
        acc += s * Cv[n];
      }
      yv[k] = acc + (pD ? pD[h] : T(0)) * xv[k];
    }
  }
  return y;
}

}  // namespace

// ------------------------------------------------------------------ public entry points

void check_ssd_inputs(const SsdInputs& in, const char* op) {
  const std::pair<const char*, const Tensor*> required[] = {
      {"x", &in.x}, {"dt", &in.dt}, {"A", &in.A}, {"B", &in.B}, {"C", &in.C}};
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
  expect_shape(in.A, {heads}, op, "A", "(H)");
  expect_like(in.A, x, op, "A");
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
  SSM_CHECK(in.chunk_size > 0, "{}: argument 'chunk_size' expected a positive integer, got {}", op,
            in.chunk_size);
}

SsdOutputs ssd_chunked_fwd(const SsdInputs& in) {
  check_ssd_inputs(in, "ssd_chunked_fwd");
  return SSM_DISPATCH_FLOAT(in.x.dtype(), "ssd_chunked_fwd",
                            [&] { return chunked_forward_impl<scalar_t>(in); });
}

SsdOutputs ssd_sequential(const SsdInputs& in) {
  check_ssd_inputs(in, "ssd_sequential");
  return SSM_DISPATCH_FLOAT(in.x.dtype(), "ssd_sequential",
                            [&] { return sequential_impl<scalar_t>(in); });
}

SsdGrads ssd_bwd(const SsdInputs& in, const Tensor& dy, const Tensor& dfinal_state) {
  const char* op = "ssd_bwd";
  check_ssd_inputs(in, op);
  SSM_CHECK(dy.defined(), "{}: argument 'dy' is required but undefined", op);
  expect_shape(dy, in.x.shape(), op, "dy", "(B, L, H, P)");
  expect_like(dy, in.x, op, "dy");
  if (dfinal_state.defined()) {
    expect_shape(dfinal_state, {in.x.size(0), in.x.size(2), in.x.size(3), in.B.size(3)}, op,
                 "dfinal_state", "(B, H, P, N)");
    expect_like(dfinal_state, in.x, op, "dfinal_state");
  }
  return SSM_DISPATCH_FLOAT(in.x.dtype(), op,
                            [&] { return backward_impl<scalar_t>(in, dy, dfinal_state); });
}

void check_ssd_step_inputs(const Tensor& state, const SsdStepInputs& in, const char* op) {
  const std::pair<const char*, const Tensor*> required[] = {
      {"state", &state}, {"x", &in.x}, {"dt", &in.dt}, {"A", &in.A}, {"B", &in.B}, {"C", &in.C}};
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
  SSM_CHECK(state.is_contiguous(), "{}: argument 'state' must be contiguous (updated in place)",
            op);
  expect_shape(in.dt, {batch, heads}, op, "dt", "(B, H)");
  expect_shape(in.A, {heads}, op, "A", "(H)");
  expect_shape(in.B, {batch, groups, n_state}, op, "B", "(B, G, N)");
  expect_shape(in.C, {batch, groups, n_state}, op, "C", "(B, G, N)");
  if (in.D.defined()) expect_shape(in.D, {heads}, op, "D", "(H)");
  const std::pair<const char*, const Tensor*> all[] = {
      {"state", &state}, {"x", &in.x}, {"dt", &in.dt}, {"A", &in.A},
      {"B", &in.B},      {"C", &in.C}, {"D", &in.D}};
  for (const auto& [name, t] : all)
    if (t->defined()) expect_like(*t, in.x, op, name);
}

Tensor ssd_state_update(Tensor& state, const SsdStepInputs& in) {
  const char* op = "ssd_state_update";
  check_ssd_step_inputs(state, in, op);
  return SSM_DISPATCH_FLOAT(in.x.dtype(), op, [&] { return step_impl<scalar_t>(state, in); });
}

}  // namespace ssm::kernels::cpu
