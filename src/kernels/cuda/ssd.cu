// SSD (Mamba-2) on CUDA: the chunked algorithm, one simple kernel per stage, one thread per
// output element (grid-stride loops). Correctness first: no tensor cores or shared-memory tiling
// yet. With a_l = dt_l·A, Λ_l = Σ_{k ≤ l in its chunk} a_k (in double), Xd_l = dt_l x_l:
//   forward  y_l = Σ_{j ≤ l} (C_l·B_j) e^{Λ_l−Λ_j} Xd_j + e^{Λ_l} S_in C_l + D x_l
//            St_c = Σ_j e^{Λ_last−Λ_j} Xd_j B_jᵀ,  S_in(c+1) = e^{Λ_last} S_in(c) + St_c
//   backward G_c = ∂/∂S_in(c) = e^{Λ_last} G_{c+1} + Σ_l e^{Λ_l} dy_l C_lᵀ (G_nc = dfinal)
//            M_lj = e^{Λ_l−Λ_j} dy_l·Xd_j;  dC_l = Σ_j M_lj B_j + e^{Λ_l} S_inᵀ dy_l;
//            dB_j = Σ_l M_lj C_l + e^{Λ_last−Λ_j} G_{c+1}ᵀ Xd_j;
//            dXd_j = Σ_l (C_l·B_j) e^{Λ_l−Λ_j} dy_l + e^{Λ_last−Λ_j} G_{c+1} B_j;
//            dΛ_l = Σ_{j≤l} CB∘M_lj − Σ_{i≥l} CB∘M_il + dy_l·(e^{Λ_l} S_in C_l) − U_l,
//              U_l = e^{Λ_last−Λ_l} Xd_l·G_{c+1} B_l; dΛ_last += Σ U + e^{Λ_last} ⟨G_{c+1}, S_in⟩;
//            da = reverse cumsum of dΛ in the chunk; ddt = x·dXd + A da; dA = Σ dt da.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/ssd.h"

namespace ssm::kernels::cuda {

namespace {

constexpr int kThreads = 256;

#define SSD_FOR_EACH(i, n)                                                  \
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < (n); \
       i += int64_t{gridDim.x} * blockDim.x)

template <typename T>
__device__ __forceinline__ T ex(double v) {
  return T(exp(v));
}

// Chunk c spans [c·Q, c·Q + chunk_len(c)).
__device__ __forceinline__ int64_t chunk_len(const SsdDims& d, int64_t c) {
  return min(d.chunk, d.len - c * d.chunk);
}

__device__ __forceinline__ int64_t state_at(const SsdDims& d, int64_t b, int64_t c, int64_t h) {
  return ((b * (d.n_chunks + 1) + c) * d.heads + h) * d.head_dim * d.state;
}

template <typename T>
__global__ void cumsum_kernel(const SsdDevice<T> a) {
  const SsdDims d = a.d;
  SSD_FOR_EACH(t, d.batch * d.heads * d.n_chunks) {
    const int64_t c = t % d.n_chunks, bh = t / d.n_chunks, h = bh % d.heads, b = bh / d.heads;
    const double A = a.A[h];
    double run = 0;
    for (int64_t i = 0, n = chunk_len(d, c); i < n; ++i) {
      const int64_t l = c * d.chunk + i;
      run += double(a.dt[(b * d.len + l) * d.heads + h]) * A;
      a.acum[bh * d.len + l] = run;
    }
  }
}

template <typename T>
__global__ void cb_kernel(const SsdDevice<T> a) {
  const SsdDims d = a.d;
  const int64_t Q = d.chunk;
  SSD_FOR_EACH(t, d.batch * d.groups * d.n_chunks * Q * Q) {
    const int64_t j = t % Q, i = (t / Q) % Q, bgc = t / (Q * Q);
    const int64_t c = bgc % d.n_chunks, bg = bgc / d.n_chunks, g = bg % d.groups, b = bg / d.groups;
    const int64_t n_in = chunk_len(d, c);
    T acc = 0;
    if (j <= i && i < n_in) {
      const T* ci = a.C + ((b * d.len + c * Q + i) * d.groups + g) * d.state;
      const T* bj = a.B + ((b * d.len + c * Q + j) * d.groups + g) * d.state;
      for (int64_t n = 0; n < d.state; ++n) acc += ci[n] * bj[n];
    }
    a.cb[t] = acc;
  }
}

// St_c into states[c + 1].
template <typename T>
__global__ void chunk_state_kernel(const SsdDevice<T> a) {
  const SsdDims d = a.d;
  const int64_t PN = d.head_dim * d.state, hpg = d.heads / d.groups;
  SSD_FOR_EACH(t, d.batch * d.n_chunks * d.heads * PN) {
    const int64_t n = t % d.state, p = (t / d.state) % d.head_dim, bch = t / PN;
    const int64_t h = bch % d.heads, c = (bch / d.heads) % d.n_chunks,
                  b = bch / (d.heads * d.n_chunks);
    const int64_t g = h / hpg, n_in = chunk_len(d, c), l0 = c * d.chunk;
    const double* acum = a.acum + (b * d.heads + h) * d.len;
    const double last = acum[l0 + n_in - 1];
    T acc = 0;
    for (int64_t j = 0; j < n_in; ++j) {
      const int64_t l = l0 + j;
      const int64_t bl = b * d.len + l;
      acc += ex<T>(last - acum[l]) * a.dt[bl * d.heads + h] *
             a.x[(bl * d.heads + h) * d.head_dim + p] * a.B[(bl * d.groups + g) * d.state + n];
    }
    a.states[state_at(d, b, c + 1, h) + p * d.state + n] = acc;
  }
}

template <typename T>
__global__ void state_pass_kernel(const SsdDevice<T> a) {
  const SsdDims d = a.d;
  const int64_t PN = d.head_dim * d.state;
  SSD_FOR_EACH(t, d.batch * d.heads * PN) {
    const int64_t pn = t % PN, bh = t / PN, h = bh % d.heads, b = bh / d.heads;
    T s = a.initial_state ? a.initial_state[t] : T(0);
    a.states[state_at(d, b, 0, h) + pn] = s;
    for (int64_t c = 0; c < d.n_chunks; ++c) {
      const double last = a.acum[bh * d.len + c * d.chunk + chunk_len(d, c) - 1];
      T* next = a.states + state_at(d, b, c + 1, h) + pn;
      s = ex<T>(last) * s + *next;
      *next = s;
    }
    a.final_state[t] = s;
  }
}

template <typename T>
__global__ void y_kernel(const SsdDevice<T> a) {
  const SsdDims d = a.d;
  const int64_t Q = d.chunk, hpg = d.heads / d.groups;
  SSD_FOR_EACH(t, d.batch * d.len * d.heads * d.head_dim) {
    const int64_t p = t % d.head_dim, blh = t / d.head_dim, h = blh % d.heads, bl = blh / d.heads;
    const int64_t l = bl % d.len, b = bl / d.len, g = h / hpg, c = l / Q, i = l % Q;
    const double* acum = a.acum + (b * d.heads + h) * d.len;
    const double al = acum[l];
    const T* cb = a.cb + ((b * d.groups + g) * d.n_chunks + c) * Q * Q + i * Q;
    T acc = 0;
    for (int64_t j = 0; j <= i; ++j) {
      const int64_t s = c * Q + j, bs = b * d.len + s;
      acc += cb[j] * ex<T>(al - acum[s]) * a.dt[bs * d.heads + h] *
             a.x[(bs * d.heads + h) * d.head_dim + p];
    }
    const T* st = a.states + state_at(d, b, c, h) + p * d.state;
    const T* cl = a.C + (bl * d.groups + g) * d.state;
    T from_state = 0;
    for (int64_t n = 0; n < d.state; ++n) from_state += st[n] * cl[n];
    acc += ex<T>(al) * from_state;
    if (a.D) acc += a.D[h] * a.x[t];
    a.y[t] = acc;
  }
}

// ---- backward ----

// Σ_l e^{Λ_l} dy_l C_lᵀ of chunk c into dstates[c].
template <typename T>
__global__ void dstate_in_kernel(const SsdDevice<T> a) {
  const SsdDims d = a.d;
  const int64_t PN = d.head_dim * d.state, hpg = d.heads / d.groups;
  SSD_FOR_EACH(t, d.batch * d.n_chunks * d.heads * PN) {
    const int64_t n = t % d.state, p = (t / d.state) % d.head_dim, bch = t / PN;
    const int64_t h = bch % d.heads, c = (bch / d.heads) % d.n_chunks,
                  b = bch / (d.heads * d.n_chunks);
    const int64_t g = h / hpg, n_in = chunk_len(d, c), l0 = c * d.chunk;
    const double* acum = a.acum + (b * d.heads + h) * d.len;
    T acc = 0;
    for (int64_t i = 0; i < n_in; ++i) {
      const int64_t bl = b * d.len + l0 + i;
      acc += ex<T>(acum[l0 + i]) * a.dy[(bl * d.heads + h) * d.head_dim + p] *
             a.C[(bl * d.groups + g) * d.state + n];
    }
    a.dstates[state_at(d, b, c, h) + p * d.state + n] = acc;
  }
}

template <typename T>
__global__ void reverse_pass_kernel(const SsdDevice<T> a) {
  const SsdDims d = a.d;
  const int64_t PN = d.head_dim * d.state;
  SSD_FOR_EACH(t, d.batch * d.heads * PN) {
    const int64_t pn = t % PN, bh = t / PN, h = bh % d.heads, b = bh / d.heads;
    T g = a.dfinal_state ? a.dfinal_state[t] : T(0);
    a.dstates[state_at(d, b, d.n_chunks, h) + pn] = g;
    for (int64_t c = d.n_chunks - 1; c >= 0; --c) {
      const double last = a.acum[bh * d.len + c * d.chunk + chunk_len(d, c) - 1];
      T* here = a.dstates + state_at(d, b, c, h) + pn;
      g = ex<T>(last) * g + *here;
      *here = g;
    }
    if (a.dinitial_state) a.dinitial_state[t] = g;
  }
}

template <typename T>
__global__ void dxd_kernel(const SsdDevice<T> a) {
  const SsdDims d = a.d;
  const int64_t Q = d.chunk, hpg = d.heads / d.groups;
  SSD_FOR_EACH(t, d.batch * d.len * d.heads * d.head_dim) {
    const int64_t p = t % d.head_dim, blh = t / d.head_dim, h = blh % d.heads, bl = blh / d.heads;
    const int64_t s = bl % d.len, b = bl / d.len, g = h / hpg, c = s / Q, j = s % Q;
    const int64_t n_in = chunk_len(d, c);
    const double* acum = a.acum + (b * d.heads + h) * d.len;
    const double as = acum[s], last = acum[c * Q + n_in - 1];
    const T* cb = a.cb + ((b * d.groups + g) * d.n_chunks + c) * Q * Q + j;
    T acc = 0;
    for (int64_t i = j; i < n_in; ++i) {
      const int64_t l = c * Q + i;
      acc +=
          cb[i * Q] * ex<T>(acum[l] - as) * a.dy[((b * d.len + l) * d.heads + h) * d.head_dim + p];
    }
    const T* gs = a.dstates + state_at(d, b, c + 1, h) + p * d.state;
    const T* bs = a.B + (bl * d.groups + g) * d.state;
    T from_state = 0;
    for (int64_t n = 0; n < d.state; ++n) from_state += gs[n] * bs[n];
    a.dxd[t] = acc + ex<T>(last - as) * from_state;
  }
}

// dx, and the per-(b, l, h) sums x·dXd and dy·x.
template <typename T>
__global__ void dx_kernel(const SsdDevice<T> a) {
  const SsdDims d = a.d;
  SSD_FOR_EACH(t, d.batch * d.len * d.heads) {
    const int64_t h = t % d.heads;
    const T dt = a.dt[t], D = a.D ? a.D[h] : T(0);
    T dtx = 0, dyx = 0;
    for (int64_t p = 0; p < d.head_dim; ++p) {
      const int64_t k = t * d.head_dim + p;
      dtx += a.x[k] * a.dxd[k];
      dyx += a.dy[k] * a.x[k];
      a.dx[k] = dt * a.dxd[k] + D * a.dy[k];
    }
    a.dtx[t] = dtx;
    a.dyx[t] = dyx;
  }
}

template <typename T>
__global__ void m_kernel(const SsdDevice<T> a) {
  const SsdDims d = a.d;
  const int64_t Q = d.chunk;
  SSD_FOR_EACH(t, d.batch * d.heads * d.n_chunks * Q * Q) {
    const int64_t j = t % Q, i = (t / Q) % Q, bhc = t / (Q * Q);
    const int64_t c = bhc % d.n_chunks, bh = bhc / d.n_chunks, h = bh % d.heads, b = bh / d.heads;
    T acc = 0;
    if (j <= i && i < chunk_len(d, c)) {
      const int64_t l = c * Q + i, s = c * Q + j;
      const T* dy = a.dy + ((b * d.len + l) * d.heads + h) * d.head_dim;
      const T* x = a.x + ((b * d.len + s) * d.heads + h) * d.head_dim;
      for (int64_t p = 0; p < d.head_dim; ++p) acc += dy[p] * x[p];
      const double* acum = a.acum + bh * d.len;
      acc *= ex<T>(acum[l] - acum[s]) * a.dt[(b * d.len + s) * d.heads + h];
    }
    a.m[t] = acc;
  }
}

// Per-head state terms: c_state = e^{Λ_l} S_inᵀ dy_l, b_state = e^{Λ_last−Λ_l} G_{c+1}ᵀ Xd_l.
template <typename T>
__global__ void state_terms_kernel(const SsdDevice<T> a) {
  const SsdDims d = a.d;
  SSD_FOR_EACH(t, d.batch * d.len * d.heads * d.state) {
    const int64_t n = t % d.state, blh = t / d.state, h = blh % d.heads, bl = blh / d.heads;
    const int64_t l = bl % d.len, b = bl / d.len, c = l / d.chunk;
    const double* acum = a.acum + (b * d.heads + h) * d.len;
    const double last = acum[c * d.chunk + chunk_len(d, c) - 1];
    const T* s_in = a.states + state_at(d, b, c, h) + n;
    const T* g_out = a.dstates + state_at(d, b, c + 1, h) + n;
    const T* dy = a.dy + blh * d.head_dim;
    const T* x = a.x + blh * d.head_dim;
    T cs = 0, bs = 0;
    for (int64_t p = 0; p < d.head_dim; ++p) {
      cs += dy[p] * s_in[p * d.state];
      bs += x[p] * g_out[p * d.state];
    }
    a.c_state[t] = ex<T>(acum[l]) * cs;
    a.b_state[t] = ex<T>(last - acum[l]) * a.dt[blh] * bs;
  }
}

// dC (from_b = false) or dB (true), summed over the heads of the group.
template <typename T, bool kDB>
__global__ void dbc_kernel(const SsdDevice<T> a) {
  const SsdDims d = a.d;
  const int64_t Q = d.chunk, hpg = d.heads / d.groups;
  SSD_FOR_EACH(t, d.batch * d.len * d.groups * d.state) {
    const int64_t n = t % d.state, blg = t / d.state, g = blg % d.groups, bl = blg / d.groups;
    const int64_t l = bl % d.len, b = bl / d.len, c = l / Q, k = l % Q, n_in = chunk_len(d, c);
    // dC_l = Σ_{j ≤ k} M_kj B_j;  dB_l = Σ_{i ≥ k} M_ik C_i.
    const T* other = kDB ? a.C : a.B;
    const T* own_state = kDB ? a.b_state : a.c_state;
    T acc = 0;
    for (int64_t h = g * hpg; h < (g + 1) * hpg; ++h) {
      const T* m = a.m + ((b * d.heads + h) * d.n_chunks + c) * Q * Q;
      const int64_t lo = kDB ? k : 0, hi = kDB ? n_in : k + 1;
      for (int64_t r = lo; r < hi; ++r) {
        const T mv = kDB ? m[r * Q + k] : m[k * Q + r];
        acc += mv * other[((b * d.len + c * Q + r) * d.groups + g) * d.state + n];
      }
      acc += own_state[(bl * d.heads + h) * d.state + n];
    }
    (kDB ? a.dB : a.dC)[t] = acc;
  }
}

template <typename T>
__global__ void dacum_kernel(const SsdDevice<T> a) {
  const SsdDims d = a.d;
  const int64_t Q = d.chunk, hpg = d.heads / d.groups;
  SSD_FOR_EACH(t, d.batch * d.heads * d.len) {
    const int64_t l = t % d.len, bh = t / d.len, h = bh % d.heads, b = bh / d.heads, g = h / hpg;
    const int64_t c = l / Q, k = l % Q, n_in = chunk_len(d, c);
    const T* m = a.m + (bh * d.n_chunks + c) * Q * Q;
    const T* cb = a.cb + ((b * d.groups + g) * d.n_chunks + c) * Q * Q;
    double acc = 0;
    for (int64_t j = 0; j <= k; ++j) acc += double(cb[k * Q + j] * m[k * Q + j]);
    for (int64_t i = k; i < n_in; ++i) acc -= double(cb[i * Q + k] * m[i * Q + k]);
    const int64_t blh = (b * d.len + l) * d.heads + h, blg = (b * d.len + l) * d.groups + g;
    double cs = 0, u = 0;
    for (int64_t n = 0; n < d.state; ++n) {
      cs += double(a.c_state[blh * d.state + n] * a.C[blg * d.state + n]);
      u += double(a.b_state[blh * d.state + n] * a.B[blg * d.state + n]);
    }
    a.dacum[t] = acc + cs - u;
    a.u[t] = u;
  }
}

// Per (b, h, chunk): the chunk-end terms of dΛ_last, the reverse cumsum to da, ddt, and the
// chunk's share of dA.
template <typename T>
__global__ void chunk_finish_kernel(const SsdDevice<T> a) {
  const SsdDims d = a.d;
  const int64_t PN = d.head_dim * d.state;
  SSD_FOR_EACH(t, d.batch * d.heads * d.n_chunks) {
    const int64_t c = t % d.n_chunks, bh = t / d.n_chunks, h = bh % d.heads, b = bh / d.heads;
    const int64_t l0 = c * d.chunk, n_in = chunk_len(d, c);
    const double* acum = a.acum + bh * d.len;
    const double last = acum[l0 + n_in - 1];
    double extra = 0, inner = 0;
    for (int64_t i = 0; i < n_in; ++i) extra += a.u[bh * d.len + l0 + i];
    const T* s_in = a.states + state_at(d, b, c, h);
    const T* g_out = a.dstates + state_at(d, b, c + 1, h);
    for (int64_t k = 0; k < PN; ++k) inner += double(s_in[k]) * double(g_out[k]);
    extra += exp(last) * inner;
    const double A = a.A[h];
    double run = 0, da = 0;
    for (int64_t i = n_in - 1; i >= 0; --i) {
      const int64_t l = l0 + i, blh = (b * d.len + l) * d.heads + h;
      run += a.dacum[bh * d.len + l] + (i == n_in - 1 ? extra : 0.0);
      a.ddt[blh] = T(double(a.dtx[blh]) + A * run);
      da += double(a.dt[blh]) * run;
    }
    a.da_part[(b * d.n_chunks + c) * d.heads + h] = da;
  }
}

// out[h] = Σ_r in[r·H + h], one block per h.
template <typename In, typename T>
__global__ void __launch_bounds__(kThreads)
    column_sum_kernel(const In* in, int64_t rows, int64_t H, T* out) {
  __shared__ double part[kThreads];
  const int64_t h = blockIdx.x;
  double acc = 0;
  for (int64_t r = threadIdx.x; r < rows; r += kThreads) acc += double(in[r * H + h]);
  part[threadIdx.x] = acc;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[h] = T(part[0]);
}

template <typename Kernel, typename Args>
cudaError_t launch(Kernel kernel, int64_t n, cudaStream_t stream, const Args& args) {
  if (n <= 0) return cudaSuccess;
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t{1} << 20);
  kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(args);
  return cudaGetLastError();
}

#define SSD_TRY(expr)                             \
  do {                                            \
    const cudaError_t ssd_err_ = (expr);          \
    if (ssd_err_ != cudaSuccess) return ssd_err_; \
  } while (0)

// The stages both passes share: Λ, C·Bᵀ, and the state entering every chunk.
template <typename T>
cudaError_t forward_states(const SsdDevice<T>& a, cudaStream_t stream) {
  const SsdDims& d = a.d;
  const int64_t PN = d.head_dim * d.state, Q = d.chunk;
  SSD_TRY(launch(cumsum_kernel<T>, d.batch * d.heads * d.n_chunks, stream, a));
  SSD_TRY(launch(cb_kernel<T>, d.batch * d.groups * d.n_chunks * Q * Q, stream, a));
  SSD_TRY(launch(chunk_state_kernel<T>, d.batch * d.n_chunks * d.heads * PN, stream, a));
  return launch(state_pass_kernel<T>, d.batch * d.heads * PN, stream, a);
}

}  // namespace

template <typename T>
cudaError_t ssd_fwd(const SsdDevice<T>& a, cudaStream_t stream) {
  SSD_TRY(forward_states(a, stream));
  return launch(y_kernel<T>, a.d.batch * a.d.len * a.d.heads * a.d.head_dim, stream, a);
}

template <typename T>
cudaError_t ssd_bwd(const SsdDevice<T>& a, cudaStream_t stream) {
  const SsdDims& d = a.d;
  const int64_t PN = d.head_dim * d.state, Q = d.chunk, BLH = d.batch * d.len * d.heads;
  SSD_TRY(forward_states(a, stream));
  SSD_TRY(launch(dstate_in_kernel<T>, d.batch * d.n_chunks * d.heads * PN, stream, a));
  SSD_TRY(launch(reverse_pass_kernel<T>, d.batch * d.heads * PN, stream, a));
  SSD_TRY(launch(dxd_kernel<T>, BLH * d.head_dim, stream, a));
  SSD_TRY(launch(dx_kernel<T>, BLH, stream, a));
  SSD_TRY(launch(m_kernel<T>, d.batch * d.heads * d.n_chunks * Q * Q, stream, a));
  SSD_TRY(launch(state_terms_kernel<T>, BLH * d.state, stream, a));
  SSD_TRY(launch(dbc_kernel<T, false>, d.batch * d.len * d.groups * d.state, stream, a));
  SSD_TRY(launch(dbc_kernel<T, true>, d.batch * d.len * d.groups * d.state, stream, a));
  SSD_TRY(launch(dacum_kernel<T>, BLH, stream, a));
  SSD_TRY(launch(chunk_finish_kernel<T>, d.batch * d.heads * d.n_chunks, stream, a));
  column_sum_kernel<double, T><<<static_cast<unsigned>(d.heads), kThreads, 0, stream>>>(
      a.da_part, d.batch * d.n_chunks, d.heads, a.dA);
  SSD_TRY(cudaGetLastError());
  if (a.dD) {
    column_sum_kernel<T, T><<<static_cast<unsigned>(d.heads), kThreads, 0, stream>>>(
        a.dyx, d.batch * d.len, d.heads, a.dD);
    SSD_TRY(cudaGetLastError());
  }
  return cudaSuccess;
}

template cudaError_t ssd_fwd<float>(const SsdDevice<float>&, cudaStream_t);
template cudaError_t ssd_fwd<double>(const SsdDevice<double>&, cudaStream_t);
template cudaError_t ssd_bwd<float>(const SsdDevice<float>&, cudaStream_t);
template cudaError_t ssd_bwd<double>(const SsdDevice<double>&, cudaStream_t);

}  // namespace ssm::kernels::cuda
