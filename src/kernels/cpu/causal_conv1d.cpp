#include "kernels/cpu/causal_conv1d.h"

#include <omp.h>

#include <algorithm>
#include <vector>

namespace ssm::kernels::cpu {

namespace {

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kParallelWork = 1 << 15;

int threads_for(int64_t work) {
  return work >= kParallelWork ? omp_get_max_threads() : 1;
}

// One (b, d) row. With the width a compile-time constant (KC > 0) the tap loop unrolls and
// the loop over l vectorises: every y[l] is an independent fixed-order sum, so no
// reassociation is needed. KC == 0 is the any-width fallback, one vectorised pass per tap.
template <typename T, int KC>
void forward_row(const T* __restrict x, const T* __restrict w_in, T bias, T* __restrict y,
                 int64_t L, int64_t K_runtime) {
  if constexpr (KC > 0) {
    constexpr int64_t K = KC;
    T w[K];
    for (int64_t j = 0; j < K; ++j) w[j] = w_in[j];
    const int64_t head = std::min<int64_t>(L, K - 1);  // outputs whose window starts before 0
    for (int64_t l = 0; l < head; ++l) {
      T s = bias;
      for (int64_t j = K - 1 - l; j < K; ++j) s += w[j] * x[l - (K - 1) + j];
      y[l] = s;
    }
    for (int64_t l = head; l < L; ++l) {
      T s = bias;
      for (int64_t j = 0; j < K; ++j) s += w[j] * x[l - (K - 1) + j];
      y[l] = s;
    }
  } else {
    const int64_t K = K_runtime;
    for (int64_t l = 0; l < L; ++l) y[l] = bias;
    for (int64_t j = 0; j < K; ++j) {
      const int64_t shift = K - 1 - j;  // tap j reads x[l − shift]
      const T wj = w_in[j];
      for (int64_t l = shift; l < L; ++l) y[l] += wj * x[l - shift];
    }
  }
}

// dx[m] = Σ_j w[j] · dy[m + (K−1) − j], the transpose of forward_row.
template <typename T, int KC>
void input_grad_row(const T* __restrict dy, const T* __restrict w_in, T* __restrict dx, int64_t L,
                    int64_t K_runtime) {
  if constexpr (KC > 0) {
    constexpr int64_t K = KC;
    T w[K];
    for (int64_t j = 0; j < K; ++j) w[j] = w_in[j];
    const int64_t body = std::max<int64_t>(0, L - (K - 1));  // every tap lands inside
    for (int64_t m = 0; m < body; ++m) {
      T s = 0;
      for (int64_t j = 0; j < K; ++j) s += w[j] * dy[m + (K - 1) - j];
      dx[m] = s;
    }
    for (int64_t m = body; m < L; ++m) {
      T s = 0;
      for (int64_t j = 0; j < K; ++j)
        if (m + (K - 1) - j < L) s += w[j] * dy[m + (K - 1) - j];
      dx[m] = s;
    }
  } else {
    const int64_t K = K_runtime;
    for (int64_t m = 0; m < L; ++m) dx[m] = 0;
    for (int64_t j = 0; j < K; ++j) {
      const int64_t shift = K - 1 - j;
      const T wj = w_in[j];
      for (int64_t m = 0; m + shift < L; ++m) dx[m] += wj * dy[m + shift];
    }
  }
}

// Σ_l a[l] · b[l]; `omp simd reduction` lets the compiler split the sum across lanes.
template <typename T>
T dot(const T* __restrict a, const T* __restrict b, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <typename T>
T sum(const T* __restrict a, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i];
  return s;
}

// Adds this row's share of dw[j] = Σ_l dy[l]·x[l−(K−1)+j] and of dbias = Σ_l dy[l] into
// dw_sum (K values) and bias_sum. With KC > 0 one pass keeps K+1 sums in kLanes-wide
// partial sums: independent chains the compiler maps onto vector registers (one
// accumulator per sum would serialise on the add latency instead).
template <typename T, int KC>
void weight_grad_row(const T* __restrict dy, const T* __restrict x, T* __restrict dw_sum,
                     T& bias_sum, int64_t L, int64_t K_runtime) {
  if constexpr (KC > 0) {
    constexpr int64_t K = KC, kLanes = 32 / sizeof(T) * 2;  // two 256-bit vectors
    T acc[K][kLanes] = {}, bias_acc[kLanes] = {};
    const int64_t head = std::min<int64_t>(L, K - 1);  // rows whose window starts before 0
    for (int64_t l = 0; l < head; ++l) {
      bias_sum += dy[l];
      for (int64_t j = K - 1 - l; j < K; ++j) dw_sum[j] += dy[l] * x[l - (K - 1) + j];
    }
    int64_t l = head;
    for (; l + kLanes <= L; l += kLanes) {
      for (int64_t i = 0; i < kLanes; ++i) {
        const T g = dy[l + i];
        bias_acc[i] += g;
        for (int64_t j = 0; j < K; ++j) acc[j][i] += g * x[l + i - (K - 1) + j];
      }
    }
    for (; l < L; ++l) {
      bias_sum += dy[l];
      for (int64_t j = 0; j < K; ++j) dw_sum[j] += dy[l] * x[l - (K - 1) + j];
    }
    for (int64_t i = 0; i < kLanes; ++i) {
      bias_sum += bias_acc[i];
      for (int64_t j = 0; j < K; ++j) dw_sum[j] += acc[j][i];
    }
  } else {
    const int64_t K = K_runtime;
    for (int64_t j = 0; j < K; ++j) {
      const int64_t shift = K - 1 - j;  // dy[l] meets x[l − shift]
      if (shift < L) dw_sum[j] += dot(dy + shift, x, L - shift);
    }
    bias_sum += sum(dy, L);
  }
}

template <typename T, int KC>
void forward_all(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t D, int64_t L,
                 int64_t K) {
  // Dynamic chunks keep both threads busy when one is slowed by other work on the machine.
  const int threads = threads_for(B * D * L * K);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 32)
  for (int64_t row = 0; row < B * D; ++row) {
    const int64_t d = row % D;
    forward_row<T, KC>(x + row * L, w + d * K, bias ? bias[d] : T(0), y + row * L, L, K);
  }
}

// Parallel over channels so that dw and dbias (sums over b) need no synchronisation.
template <typename T, int KC>
void backward_all(const T* dy, const T* x, const T* w, T* dx, T* dw, T* dbias, int64_t B, int64_t D,
                  int64_t L, int64_t K) {
  // dw and dbias come out of one pass; when only dbias is wanted, dw's sums go to scratch
  // (allocated here: nothing inside the parallel region may throw).
  std::vector<T> dw_scratch(dw == nullptr && dbias != nullptr ? static_cast<size_t>(D * K) : 0);
  T* dw_sums = dw ? dw : dw_scratch.data();
  const int threads = threads_for(B * D * L * K);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 2)
  for (int64_t d = 0; d < D; ++d) {
    T bias_sum = 0;
    if (dw_sums) std::fill(dw_sums + d * K, dw_sums + (d + 1) * K, T(0));
    for (int64_t b = 0; b < B; ++b) {
      const int64_t offset = (b * D + d) * L;
      if (dx) input_grad_row<T, KC>(dy + offset, w + d * K, dx + offset, L, K);
      if (dw_sums) weight_grad_row<T, KC>(dy + offset, x + offset, dw_sums + d * K, bias_sum, L, K);
    }
    if (dbias) dbias[d] = bias_sum;
  }
}

}  // namespace

template <typename T>
void causal_conv1d_fwd(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t D, int64_t L,
                       int64_t K) {
  switch (K) {
    case 2:
      return forward_all<T, 2>(x, w, bias, y, B, D, L, K);
    case 3:
      return forward_all<T, 3>(x, w, bias, y, B, D, L, K);
    case 4:
      return forward_all<T, 4>(x, w, bias, y, B, D, L, K);
    default:
      return forward_all<T, 0>(x, w, bias, y, B, D, L, K);
  }
}

template <typename T>
void causal_conv1d_bwd(const T* dy, const T* x, const T* w, T* dx, T* dw, T* dbias, int64_t B,
                       int64_t D, int64_t L, int64_t K) {
  switch (K) {
    case 2:
      return backward_all<T, 2>(dy, x, w, dx, dw, dbias, B, D, L, K);
    case 3:
      return backward_all<T, 3>(dy, x, w, dx, dw, dbias, B, D, L, K);
    case 4:
      return backward_all<T, 4>(dy, x, w, dx, dw, dbias, B, D, L, K);
    default:
      return backward_all<T, 0>(dy, x, w, dx, dw, dbias, B, D, L, K);
  }
}

template <typename T>
void causal_conv1d_update(const T* x_t, T* state, const T* w, const T* bias, T* y_t, int64_t B,
                          int64_t D, int64_t K) {
  const int64_t S = K - 1;  // remembered inputs per channel
  const int threads = threads_for(B * D * K);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t row = 0; row < B * D; ++row) {
    const int64_t d = row % D;
    T* st = state + row * S;
    const T* wd = w + d * K;
    const T xt = x_t[row];
    T s = bias ? bias[d] : T(0);
    for (int64_t j = 0; j < S; ++j) s += wd[j] * st[j];
    s += wd[S] * xt;
    y_t[row] = s;
    for (int64_t j = 0; j + 1 < S; ++j) st[j] = st[j + 1];
    if (S > 0) st[S - 1] = xt;
  }
}

#define SSM_INSTANTIATE_CAUSAL_CONV1D(T)                                                          \
  template void causal_conv1d_fwd<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, \
                                     int64_t);                                                    \
  template void causal_conv1d_bwd<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t,  \
                                     int64_t, int64_t);                                           \
  template void causal_conv1d_update<T>(const T*, T*, const T*, const T*, T*, int64_t, int64_t,   \
                                        int64_t);
SSM_INSTANTIATE_CAUSAL_CONV1D(float)
SSM_INSTANTIATE_CAUSAL_CONV1D(double)
#undef SSM_INSTANTIATE_CAUSAL_CONV1D

}  // namespace ssm::kernels::cpu
