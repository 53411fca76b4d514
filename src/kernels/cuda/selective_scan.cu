// Selective scan (Mamba-1) on CUDA: forward and backward kernels.
//
// One block per channel (b, d); the sequence is walked in chunks of kScanChunk steps, each of
// the kScanThreads threads owning kScanItems consecutive steps. For every state entry n the
// recurrence h_l = a_l h_{l−1} + b_l (a_l = exp(dt_l A_n), b_l = dt_l u_l B_l) is an affine map
// per step; maps compose associatively, (a₁, b₁) then (a₂, b₂) = (a₂a₁, a₂b₁ + b₂), so a block
// scan of the threads' composed maps gives each thread the state entering its steps. The state
// leaving a chunk is carried to the next in shared memory; the state entering each chunk is
// saved for the backward, which never sees a (B, L, D, N) tensor either.
//
// Backward, chunks in reverse: recompute the chunk's states from the saved one (a forward block
// scan), then carry s_l = a_l (s_{l+1} + dy_l C_l) — the gradient reaching h_{l−1} through step l —
// with a reverse block scan of the maps (a_l, a_l dy_l C_l). With g_l = s_{l+1} + dy_l C_l the
// total gradient of h_l:
//   dC_l += dy_l h_l,  dB_l += g_l dt_l u_l,  du_l = dy_l D + dt_l Σ_n g_l B_l,
//   ddt_l = Σ_n g_l h_{l−1} a_l A_n + u_l Σ_n g_l B_l,  dA_n += g_l h_{l−1} a_l dt_l.
// dB and dC are shared by the channels of a group: each block adds its chunk's values with
// atomics, staged through shared memory so that a warp's atomics hit consecutive addresses.
#include <cuda_runtime.h>

#include <cstdlib>

#include "kernels/cuda/selective_scan_launch.h"

namespace ssm::kernels::cuda {

namespace {

constexpr int kWarps = kScanThreads / 32;
constexpr int kItems = kScanItems;
constexpr unsigned kFullMask = 0xffffffffu;

// The affine map h ↦ a·h + b of one step (or of several composed).
template <typename T>
struct Affine {
  T a, b;
};

template <typename T>
__device__ __forceinline__ Affine<T> identity() {
  return {T(1), T(0)};
}

// First p, then q.
template <typename T>
__device__ __forceinline__ Affine<T> then(Affine<T> p, Affine<T> q) {
  return {q.a * p.a, q.a * p.b + q.b};
}

__device__ __forceinline__ float exp_(float x) {
  return __expf(x);
}
__device__ __forceinline__ double exp_(double x) {
  return exp(x);
}
__device__ __forceinline__ float log1p_(float x) {
  return log1pf(x);
}
__device__ __forceinline__ double log1p_(double x) {
  return log1p(x);
}

template <typename T>
__device__ __forceinline__ T sigmoid(T x) {
  return T(1) / (T(1) + exp_(-x));
}
// log(1 + e^x) without overflow.
template <typename T>
__device__ __forceinline__ T softplus(T x) {
  return (x > T(0) ? x : T(0)) + log1p_(exp_(-(x > T(0) ? x : -x)));
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFullMask, v, off);
  return v;
}

// Exclusive scans of the threads' maps in thread order (kReverse: from the last thread down),
// kP independent scans at once (one per state entry n of a pass: their shuffles interleave and
// they share one barrier). Returns in before[p] the composition of every earlier thread's map
// (identity for the first) and in total[p] the whole block's. `slots` alternates between two
// buffers, so one barrier per call suffices: a buffer is rewritten only after every thread has
// passed the barrier of the call in between, i.e. has finished reading it.
template <typename T, bool kReverse, int kP>
__device__ __forceinline__ void block_scan(const Affine<T> (&mine)[kP], Affine<T> (&before)[kP],
                                           Affine<T> (&total)[kP],
                                           Affine<T> (&slots)[2][kWarps][kP], int& parity) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int rank_lane = kReverse ? 31 - lane : lane;
  const int rank_warp = kReverse ? kWarps - 1 - warp : warp;
  auto shfl = [](T v, int off) {
    return kReverse ? __shfl_down_sync(kFullMask, v, off) : __shfl_up_sync(kFullMask, v, off);
  };
  Affine<T> inc[kP];
#pragma unroll
  for (int p = 0; p < kP; ++p) inc[p] = mine[p];
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
#pragma unroll
    for (int p = 0; p < kP; ++p) {
      const Affine<T> prev{shfl(inc[p].a, off), shfl(inc[p].b, off)};
      if (rank_lane >= off) inc[p] = then(prev, inc[p]);
    }
  }
  Affine<T> in_warp[kP];
#pragma unroll
  for (int p = 0; p < kP; ++p) {
    const Affine<T> prev{shfl(inc[p].a, 1), shfl(inc[p].b, 1)};
    in_warp[p] = rank_lane == 0 ? identity<T>() : prev;
  }
  Affine<T>(&s)[kWarps][kP] = slots[parity];
  parity ^= 1;
  if (rank_lane == 31) {
#pragma unroll
    for (int p = 0; p < kP; ++p) s[rank_warp][p] = inc[p];
  }
  __syncthreads();
#pragma unroll
  for (int p = 0; p < kP; ++p) {
    Affine<T> b = identity<T>(), t = identity<T>();
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      if (w < rank_warp) b = then(b, s[w][p]);
      t = then(t, s[w][p]);
    }
    before[p] = then(b, in_warp[p]);
    total[p] = t;
  }
}

// 16 bytes of T, for vector loads and stores.
template <typename T>
struct alignas(16) Pack {
  T v[16 / sizeof(T)];
};

// A read-only 16-byte load through the non-coherent cache.
__device__ __forceinline__ Pack<float> load16(const float* p) {
  const float4 x = __ldg(reinterpret_cast<const float4*>(p));
  return {{x.x, x.y, x.z, x.w}};
}
__device__ __forceinline__ Pack<double> load16(const double* p) {
  const double2 x = __ldg(reinterpret_cast<const double2*>(p));
  return {{x.x, x.y}};
}

// v[i] = row[(first + i)·stride] for the steps before `len`, `fill` after.
template <typename T>
__device__ __forceinline__ void load_items(const T* row, int64_t stride, int64_t first, int64_t len,
                                           T (&v)[kItems], T fill) {
  constexpr int kVec = 16 / sizeof(T);
  const T* p = row + first * stride;
  if (stride == 1 && first + kItems <= len && (reinterpret_cast<uintptr_t>(p) & 15) == 0) {
#pragma unroll
    for (int k = 0; k < kItems / kVec; ++k) {
      const Pack<T> pk = load16(p + k * kVec);
#pragma unroll
      for (int j = 0; j < kVec; ++j) v[k * kVec + j] = pk.v[j];
    }
  } else {
#pragma unroll
    for (int i = 0; i < kItems; ++i) v[i] = first + i < len ? __ldg(p + i * stride) : fill;
  }
}

// row[first + i] = v[i] for the steps before `len` (row contiguous).
template <typename T>
__device__ __forceinline__ void store_items(T* row, int64_t first, int64_t len,
                                            const T (&v)[kItems]) {
  constexpr int kVec = 16 / sizeof(T);
  T* p = row + first;
  if (first + kItems <= len && (reinterpret_cast<uintptr_t>(p) & 15) == 0) {
#pragma unroll
    for (int k = 0; k < kItems / kVec; ++k) {
      Pack<T> pk;
#pragma unroll
      for (int j = 0; j < kVec; ++j) pk.v[j] = v[k * kVec + j];
      reinterpret_cast<Pack<T>*>(p)[k] = pk;
    }
  } else {
#pragma unroll
    for (int i = 0; i < kItems; ++i)
      if (first + i < len) p[i] = v[i];
  }
}

// What every kernel derives from the block index: the channel and its rows.
template <typename T>
struct Channel {
  int64_t bd, b, d, g;
  const T* u;
  const T* delta;
  const T* z;
  const T* B;  // (N, L) plane of the channel's group
  const T* C;
  T bias, skip;

  __device__ Channel(const ScanArgs<T>& p) {
    bd = blockIdx.x;
    b = bd / p.dim;
    d = bd % p.dim;
    g = d / (p.dim / p.groups);
    u = p.u.data + b * p.u.s0 + d * p.u.s1;
    delta = p.delta.data + b * p.delta.s0 + d * p.delta.s1;
    z = p.z.data ? p.z.data + b * p.z.s0 + d * p.z.s1 : nullptr;
    B = p.B.data + b * p.B.s0 + g * p.B.s1;
    C = p.C.data + b * p.C.s0 + g * p.C.s1;
    bias = p.delta_bias.data ? p.delta_bias.data[d * p.delta_bias.s0] : T(0);
    skip = p.skip.data ? p.skip.data[d * p.skip.s0] : T(0);
  }
};

// The chunk's u and step sizes dt; steps past the end get u = dt = 0 (the identity map).
template <typename T>
__device__ __forceinline__ void load_steps(const ScanArgs<T>& p, const Channel<T>& ch,
                                           int64_t first, T (&u)[kItems], T (&dt)[kItems]) {
  load_items(ch.u, p.u.s2, first, p.len, u, T(0));
  load_items(ch.delta, p.delta.s2, first, p.len, dt, T(0));
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    const T x = dt[i] + ch.bias;
    dt[i] = first + i < p.len ? (p.softplus ? softplus(x) : x) : T(0);
  }
}

template <typename T, int kP>
__global__ void __launch_bounds__(kScanThreads)
    selective_scan_fwd_kernel(const ScanArgs<T> p, const ScanFwdOut<T> o) {
  __shared__ T carry[2][kScanMaxState + kP];  // state leaving the previous chunk, per n
  __shared__ Affine<T> slots[2][kWarps][kP];
  int parity = 0;
  const Channel<T> ch(p);
  const int N = static_cast<int>(p.state);
  const int tid = threadIdx.x;
  for (int n = tid; n < N; n += kScanThreads)
    carry[0][n] = p.h0.data ? p.h0.data[ch.b * p.h0.s0 + ch.d * p.h0.s1 + n * p.h0.s2] : T(0);

  for (int64_t c = 0; c < p.n_chunks; ++c) {
    const int cur = static_cast<int>(c & 1);
    __syncthreads();  // carry[cur] was written by thread 0 during the previous chunk
    for (int n = tid; n < N; n += kScanThreads)
      o.chunk_states[(ch.bd * p.n_chunks + c) * N + n] = carry[cur][n];
    const int64_t first = c * kScanChunk + int64_t{tid} * kItems;
    T u[kItems], dt[kItems], y[kItems];
    load_steps(p, ch, first, u, dt);
#pragma unroll
    for (int i = 0; i < kItems; ++i) y[i] = T(0);

    // kP state entries per pass; entries past N are identity maps (A = B = C = 0).
    for (int n0 = 0; n0 < N; n0 += kP) {
      T Bv[kP][kItems], Cv[kP][kItems], An[kP];
#pragma unroll
      for (int q = 0; q < kP; ++q) {
        const int n = n0 + q;
        const bool live = n < N;
        An[q] = live ? p.A.data[ch.d * p.A.s0 + n * p.A.s1] : T(0);
        load_items(ch.B + n * p.B.s2, p.B.s3, first, live ? p.len : 0, Bv[q], T(0));
        load_items(ch.C + n * p.C.s2, p.C.s3, first, live ? p.len : 0, Cv[q], T(0));
      }
      Affine<T> mine[kP], before[kP], total[kP];
#pragma unroll
      for (int q = 0; q < kP; ++q) {
        mine[q] = identity<T>();
#pragma unroll
        for (int i = 0; i < kItems; ++i)
          mine[q] = then(mine[q], Affine<T>{exp_(dt[i] * An[q]), dt[i] * u[i] * Bv[q][i]});
      }
      block_scan<T, false, kP>(mine, before, total, slots, parity);
#pragma unroll
      for (int q = 0; q < kP; ++q) {
        const T h_in = n0 + q < N ? carry[cur][n0 + q] : T(0);
        T h = before[q].a * h_in + before[q].b;
#pragma unroll
        for (int i = 0; i < kItems; ++i) {
          h = exp_(dt[i] * An[q]) * h + dt[i] * u[i] * Bv[q][i];
          y[i] += Cv[q][i] * h;
        }
        if (tid == 0 && n0 + q < N) carry[cur ^ 1][n0 + q] = total[q].a * h_in + total[q].b;
      }
    }

    T zv[kItems];
    if (ch.z) load_items(ch.z, p.z.s2, first, p.len, zv, T(0));
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const T v = y[i] + ch.skip * u[i];
      y[i] = ch.z ? v * zv[i] * sigmoid(zv[i]) : v;
    }
    store_items(o.out + ch.bd * p.len, first, p.len, y);
  }
  __syncthreads();
  const int last = static_cast<int>(p.n_chunks & 1);
  for (int n = tid; n < N; n += kScanThreads) o.last_state[ch.bd * N + n] = carry[last][n];
}

// Shared-memory index with one pad word per 32, so a thread's kItems consecutive entries and
// a warp's consecutive entries both avoid bank conflicts.
__device__ __forceinline__ int padded(int j) {
  return j + j / 32;
}

template <typename T, int kP>
__global__ void __launch_bounds__(kScanThreads)
    selective_scan_bwd_kernel(const ScanArgs<T> p, const ScanBwdArgs<T> gr) {
  __shared__ T carry[2][kScanMaxState + kP];  // s entering the chunk from its right, per n
  __shared__ T dA_acc[kScanMaxState + kP];
  __shared__ T tile[kP][2][kScanChunk + kScanChunk / 32];  // the chunk's dB and dC per entry
  __shared__ Affine<T> slots[2][kWarps][kP];
  __shared__ T partial[2][kWarps];
  int parity = 0;
  const Channel<T> ch(p);
  const int N = static_cast<int>(p.state);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  for (int n = tid; n < N; n += kScanThreads) {
    carry[0][n] = gr.dlast.data
                      ? gr.dlast.data[ch.b * gr.dlast.s0 + ch.d * gr.dlast.s1 + n * gr.dlast.s2]
                      : T(0);
    dA_acc[n] = T(0);
  }
  T dskip_part = T(0), dbias_part = T(0);
  const int64_t bgN = (ch.b * p.groups + ch.g) * p.state;  // row of (b, g, n=0) in dB, dC
  const T* dout_row = gr.dout.data + ch.b * gr.dout.s0 + ch.d * gr.dout.s1;

  for (int64_t k = 0; k < p.n_chunks; ++k) {
    const int64_t c = p.n_chunks - 1 - k;
    const int cur = static_cast<int>(k & 1);
    __syncthreads();
    const int64_t first = c * kScanChunk + int64_t{tid} * kItems;
    T u[kItems], dt[kItems], dy[kItems], zv[kItems], y[kItems], du[kItems], ddt[kItems];
    load_steps(p, ch, first, u, dt);
    load_items(dout_row, gr.dout.s2, first, p.len, dy, T(0));
    if (ch.z) load_items(ch.z, p.z.s2, first, p.len, zv, T(0));
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      if (ch.z) dy[i] *= zv[i] * sigmoid(zv[i]);  // gradient of y + D u (before the gate)
      y[i] = T(0);
      du[i] = dy[i] * ch.skip;
      ddt[i] = T(0);
    }

    for (int n0 = 0; n0 < N; n0 += kP) {
      T Bv[kP][kItems], Cv[kP][kItems], An[kP], h_start[kP];
#pragma unroll
      for (int q = 0; q < kP; ++q) {
        const int n = n0 + q;
        const bool live = n < N;
        An[q] = live ? p.A.data[ch.d * p.A.s0 + n * p.A.s1] : T(0);
        h_start[q] = live ? gr.chunk_states[(ch.bd * p.n_chunks + c) * N + n] : T(0);
        load_items(ch.B + n * p.B.s2, p.B.s3, first, live ? p.len : 0, Bv[q], T(0));
        load_items(ch.C + n * p.C.s2, p.C.s3, first, live ? p.len : 0, Cv[q], T(0));
      }
      // Recompute the states: a forward scan from the chunk's saved state.
      Affine<T> mine[kP], before[kP], total[kP];
#pragma unroll
      for (int q = 0; q < kP; ++q) {
        mine[q] = identity<T>();
#pragma unroll
        for (int i = 0; i < kItems; ++i)
          mine[q] = then(mine[q], Affine<T>{exp_(dt[i] * An[q]), dt[i] * u[i] * Bv[q][i]});
      }
      block_scan<T, false, kP>(mine, before, total, slots, parity);
      T hprev[kP][kItems];
#pragma unroll
      for (int q = 0; q < kP; ++q) {
        T h = before[q].a * h_start[q] + before[q].b;
#pragma unroll
        for (int i = 0; i < kItems; ++i) {
          hprev[q][i] = h;
          h = exp_(dt[i] * An[q]) * h + dt[i] * u[i] * Bv[q][i];
          y[i] += Cv[q][i] * h;
        }
      }
      // The gradient carried backwards: a reverse scan of (a_l, a_l dy_l C_l).
#pragma unroll
      for (int q = 0; q < kP; ++q) {
        mine[q] = identity<T>();
#pragma unroll
        for (int i = kItems - 1; i >= 0; --i) {
          const T a = exp_(dt[i] * An[q]);
          mine[q] = then(mine[q], Affine<T>{a, a * dy[i] * Cv[q][i]});
        }
      }
      block_scan<T, true, kP>(mine, before, total, slots, parity);
#pragma unroll
      for (int q = 0; q < kP; ++q) {
        const T s_in = n0 + q < N ? carry[cur][n0 + q] : T(0);
        T s = before[q].a * s_in + before[q].b;
        T dA_part = T(0);
#pragma unroll
        for (int i = kItems - 1; i >= 0; --i) {
          const T a = exp_(dt[i] * An[q]);
          const T gn = s + dy[i] * Cv[q][i];
          const T hi = a * hprev[q][i] + dt[i] * u[i] * Bv[q][i];
          const T da = gn * hprev[q][i] * a;  // gradient of dt·A_n
          du[i] += gn * Bv[q][i] * dt[i];
          ddt[i] += da * An[q] + gn * Bv[q][i] * u[i];
          dA_part += da * dt[i];
          s = a * gn;
          tile[q][0][padded(tid * kItems + i)] = gn * dt[i] * u[i];
          tile[q][1][padded(tid * kItems + i)] = dy[i] * hi;
        }
        if (tid == 0 && n0 + q < N) carry[cur ^ 1][n0 + q] = total[q].a * s_in + total[q].b;
        dA_part = warp_sum(dA_part);
        if (lane == 0) atomicAdd(&dA_acc[n0 + q], dA_part);
      }
      __syncthreads();
      const int64_t valid = p.len - c * kScanChunk;
#pragma unroll
      for (int q = 0; q < kP; ++q) {
        if (n0 + q >= N) break;
        T* dB_row = gr.dB + (bgN + n0 + q) * p.len + c * kScanChunk;
        T* dC_row = gr.dC + (bgN + n0 + q) * p.len + c * kScanChunk;
#pragma unroll
        for (int i = 0; i < kItems; ++i) {
          const int j = i * kScanThreads + tid;
          if (j < valid) {
            atomicAdd(dB_row + j, tile[q][0][padded(j)]);
            atomicAdd(dC_row + j, tile[q][1][padded(j)]);
          }
        }
      }
    }

    T ddelta[kItems], dz[kItems], delta_raw[kItems];
    load_items(ch.delta, p.delta.s2, first, p.len, delta_raw, T(0));
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const bool valid = first + i < p.len;
      const T v = y[i] + ch.skip * u[i];
      if (ch.z) {
        const T sg = sigmoid(zv[i]);
        const T dout_i = valid ? dout_row[(first + i) * gr.dout.s2] : T(0);
        dz[i] = dout_i * v * sg * (T(1) + zv[i] * (T(1) - sg));
      }
      ddelta[i] = p.softplus ? ddt[i] * sigmoid(delta_raw[i] + ch.bias) : ddt[i];
      if (valid) {
        dskip_part += dy[i] * u[i];
        dbias_part += ddelta[i];
      }
    }
    store_items(gr.du + ch.bd * p.len, first, p.len, du);
    store_items(gr.ddelta + ch.bd * p.len, first, p.len, ddelta);
    if (ch.z) store_items(gr.dz + ch.bd * p.len, first, p.len, dz);
  }
  __syncthreads();
  const int last = static_cast<int>(p.n_chunks & 1);
  for (int n = tid; n < N; n += kScanThreads) {
    if (gr.dh0) gr.dh0[ch.bd * N + n] = carry[last][n];
    atomicAdd(&gr.dA[ch.d * N + n], dA_acc[n]);
  }
  dskip_part = warp_sum(dskip_part);
  dbias_part = warp_sum(dbias_part);
  if (lane == 0) {
    partial[0][warp] = dskip_part;
    partial[1][warp] = dbias_part;
  }
  __syncthreads();
  if (tid == 0) {
    T sk = T(0), bi = T(0);
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      sk += partial[0][w];
      bi += partial[1][w];
    }
    if (gr.dskip) atomicAdd(&gr.dskip[ch.d], sk);
    if (gr.ddelta_bias) atomicAdd(&gr.ddelta_bias[ch.d], bi);
  }
}

// One thread per channel (b, d), walking its N state entries.
template <typename T>
__global__ void selective_state_update_kernel(const StepArgs<T> p) {
  const int64_t bd = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (bd >= p.batch * p.dim) return;
  const int64_t b = bd / p.dim, d = bd % p.dim, g = d / (p.dim / p.groups);
  const T xv = p.x.data[b * p.x.s0 + d * p.x.s1];
  T dt = p.dt.data[b * p.dt.s0 + d * p.dt.s1] +
         (p.dt_bias.data ? p.dt_bias.data[d * p.dt_bias.s0] : T(0));
  if (p.softplus) dt = softplus(dt);
  T* h = p.h + bd * p.state;
  const T* Bv = p.B.data + b * p.B.s0 + g * p.B.s1;
  const T* Cv = p.C.data + b * p.C.s0 + g * p.C.s1;
  T acc = T(0);
  for (int64_t n = 0; n < p.state; ++n) {
    const T hn = exp_(dt * p.A.data[d * p.A.s0 + n * p.A.s1]) * h[n] + dt * xv * Bv[n * p.B.s2];
    h[n] = hn;
    acc += Cv[n * p.C.s2] * hn;
  }
  if (p.skip.data) acc += p.skip.data[d * p.skip.s0] * xv;
  if (p.z.data) {
    const T zv = p.z.data[b * p.z.s0 + d * p.z.s1];
    acc *= zv * sigmoid(zv);
  }
  p.y[bd] = acc;
}

}  // namespace

template <typename T>
cudaError_t launch_selective_state_update(const StepArgs<T>& args, cudaStream_t stream) {
  constexpr int kThreads = 128;
  const int64_t channels = args.batch * args.dim;
  const dim3 grid(static_cast<unsigned>((channels + kThreads - 1) / kThreads));
  selective_state_update_kernel<T><<<grid, kThreads, 0, stream>>>(args);
  return cudaGetLastError();
}
template cudaError_t launch_selective_state_update<float>(const StepArgs<float>&, cudaStream_t);
template cudaError_t launch_selective_state_update<double>(const StepArgs<double>&, cudaStream_t);

// State entries per block-scan pass (1, 2 or 4): more entries per pass let their shuffle chains
// and loads overlap and share a barrier, at the cost of registers (float32 forward: 72, 118,
// 215). On an H100 one entry was fastest (B=8, D=2048, N=16: 2 took 8% longer forward+backward,
// 4 took 25% longer; docs/PERFORMANCE.md), so 1 is the default. SSM_SCAN_STATES_PER_PASS
// overrides it for tuning on other GPUs; every choice computes the same result.
int states_per_pass(int fallback) {
  static const int chosen = [] {
    const char* env = std::getenv("SSM_SCAN_STATES_PER_PASS");
    return env ? std::atoi(env) : 0;
  }();
  return chosen == 1 || chosen == 2 || chosen == 4 ? chosen : fallback;
}

template <typename T>
cudaError_t launch_selective_scan_fwd(const ScanArgs<T>& args, const ScanFwdOut<T>& out,
                                      cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(args.batch * args.dim));
  if constexpr (sizeof(T) == 8) {  // float64 (checks): one entry per pass, fewest registers
    selective_scan_fwd_kernel<T, 1><<<grid, kScanThreads, 0, stream>>>(args, out);
  } else {
    switch (states_per_pass(1)) {
      case 4:
        selective_scan_fwd_kernel<T, 4><<<grid, kScanThreads, 0, stream>>>(args, out);
        break;
      case 2:
        selective_scan_fwd_kernel<T, 2><<<grid, kScanThreads, 0, stream>>>(args, out);
        break;
      default:
        selective_scan_fwd_kernel<T, 1><<<grid, kScanThreads, 0, stream>>>(args, out);
    }
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_selective_scan_bwd(const ScanArgs<T>& args, const ScanBwdArgs<T>& grads,
                                      cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(args.batch * args.dim));
  if constexpr (sizeof(T) == 8) {  // float64 (checks): one entry per pass, fewest registers
    selective_scan_bwd_kernel<T, 1><<<grid, kScanThreads, 0, stream>>>(args, grads);
  } else {
    switch (states_per_pass(1)) {
      case 4:
        selective_scan_bwd_kernel<T, 4><<<grid, kScanThreads, 0, stream>>>(args, grads);
        break;
      case 2:
        selective_scan_bwd_kernel<T, 2><<<grid, kScanThreads, 0, stream>>>(args, grads);
        break;
      default:
        selective_scan_bwd_kernel<T, 1><<<grid, kScanThreads, 0, stream>>>(args, grads);
    }
  }
  return cudaGetLastError();
}

template cudaError_t launch_selective_scan_fwd<float>(const ScanArgs<float>&,
                                                      const ScanFwdOut<float>&, cudaStream_t);
template cudaError_t launch_selective_scan_fwd<double>(const ScanArgs<double>&,
                                                       const ScanFwdOut<double>&, cudaStream_t);
template cudaError_t launch_selective_scan_bwd<float>(const ScanArgs<float>&,
                                                      const ScanBwdArgs<float>&, cudaStream_t);
template cudaError_t launch_selective_scan_bwd<double>(const ScanArgs<double>&,
                                                       const ScanBwdArgs<double>&, cudaStream_t);

}  // namespace ssm::kernels::cuda
