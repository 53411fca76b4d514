#include "kernels/cpu/softmax.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace ssm::cpu {

namespace {

constexpr int64_t kParallelWork = int64_t{1} << 15;
// Columns of the inner axis handled together when the softmax dim is not the last one.
constexpr int64_t kColumnBlock = 128;

int threads_for(int64_t work) {
  return work >= kParallelWork ? omp_get_max_threads() : 1;
}

// One row of contiguous length n.
template <typename T>
void softmax_row(const T* __restrict x, T* __restrict y, int64_t n, bool log) {
  T mx = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  if (log) {
    for (int64_t i = 0; i < n; ++i) sum += std::exp(x[i] - mx);
    // (x − max) is exact for nearby values; adding max back first would round at its scale.
    const T log_sum = static_cast<T>(std::log(sum));
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mx) - log_sum;
  } else {
    for (int64_t i = 0; i < n; ++i) {
      y[i] = std::exp(x[i] - mx);
      sum += y[i];
    }
    const T inv = static_cast<T>(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

// Columns [j0, j0 + w) of one (n, inner) slab: the normalised axis is strided by inner, so
// each step along it reads w contiguous values (vectorisable) for w independent softmaxes.
template <typename T>
void softmax_columns(const T* __restrict x, T* __restrict y, int64_t n, int64_t inner, int64_t w,
                     bool log) {
  T mx[kColumnBlock];
  double sum[kColumnBlock];
  for (int64_t j = 0; j < w; ++j) {
    mx[j] = -std::numeric_limits<T>::infinity();
    sum[j] = 0;
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w; ++j) mx[j] = std::max(mx[j], x[i * inner + j]);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w; ++j) {
      const T e = std::exp(x[i * inner + j] - mx[j]);
      if (!log) y[i * inner + j] = e;
      sum[j] += e;
    }
  T post[kColumnBlock];
  for (int64_t j = 0; j < w; ++j)
    post[j] = log ? static_cast<T>(std::log(sum[j])) : static_cast<T>(1.0 / sum[j]);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w; ++j) {
      if (log)
        y[i * inner + j] = (x[i * inner + j] - mx[j]) - post[j];
      else
        y[i * inner + j] *= post[j];
    }
}

template <typename T>
void softmax_bwd_row(const T* __restrict dy, const T* __restrict y, T* __restrict dx, int64_t n,
                     bool log) {
  double s = 0;
  if (log) {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += dy[i];
    const T st = static_cast<T>(s);
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] - std::exp(y[i]) * st;
  } else {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += dy[i] * y[i];
    const T st = static_cast<T>(s);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dx[i] = y[i] * (dy[i] - st);
  }
}

template <typename T>
void softmax_bwd_columns(const T* __restrict dy, const T* __restrict y, T* __restrict dx, int64_t n,
                         int64_t inner, int64_t w, bool log) {
  double s[kColumnBlock];
  for (int64_t j = 0; j < w; ++j) s[j] = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w; ++j)
      s[j] += log ? dy[i * inner + j] : dy[i * inner + j] * y[i * inner + j];
  T st[kColumnBlock];
  for (int64_t j = 0; j < w; ++j) st[j] = static_cast<T>(s[j]);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w; ++j) {
      const int64_t k = i * inner + j;
      dx[k] = log ? dy[k] - std::exp(y[k]) * st[j] : y[k] * (dy[k] - st[j]);
    }
}

}  // namespace

template <typename T>
void softmax_fwd(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log) {
  const int threads = threads_for(outer * n * inner);
  if (inner == 1) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t r = 0; r < outer; ++r) softmax_row(x + r * n, y + r * n, n, log);
    return;
  }
  const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t t = 0; t < outer * blocks; ++t) {
    const int64_t o = t / blocks, j0 = (t % blocks) * kColumnBlock;
    const int64_t off = o * n * inner + j0;
    softmax_columns(x + off, y + off, n, inner, std::min(kColumnBlock, inner - j0), log);
  }
}

template <typename T>
void softmax_bwd(const T* dy, const T* y, T* dx, int64_t outer, int64_t n, int64_t inner,
                 bool log) {
  const int threads = threads_for(outer * n * inner);
  if (inner == 1) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t r = 0; r < outer; ++r) softmax_bwd_row(dy + r * n, y + r * n, dx + r * n, n, log);
    return;
  }
  const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t t = 0; t < outer * blocks; ++t) {
    const int64_t o = t / blocks, j0 = (t % blocks) * kColumnBlock;
    const int64_t off = o * n * inner + j0;
    softmax_bwd_columns(dy + off, y + off, dx + off, n, inner, std::min(kColumnBlock, inner - j0),
                        log);
  }
}

template <typename T, typename I>
CrossEntropySums cross_entropy_fwd(const T* logits, const I* targets, T* row_max, T* log_sum,
                                   int64_t N, int64_t C, int64_t ignore_index, double smoothing) {
  double loss_sum = 0;
  int64_t counted = 0;
  int64_t first_bad = N;  // min-reduced; N means none
#pragma omp parallel for schedule(static) num_threads(threads_for(N * C)) \
    reduction(+ : loss_sum, counted) reduction(min : first_bad)
  for (int64_t r = 0; r < N; ++r) {
    const int64_t t = static_cast<int64_t>(targets[r]);
    if (t == ignore_index) {
      row_max[r] = log_sum[r] = T(0);
      continue;
    }
    const T* __restrict x = logits + r * C;
    T mx = -std::numeric_limits<T>::infinity();
    for (int64_t c = 0; c < C; ++c) mx = std::max(mx, x[c]);
    double sum_exp = 0, sum_x = 0;
    for (int64_t c = 0; c < C; ++c) {
      sum_exp += std::exp(x[c] - mx);
      sum_x += x[c];
    }
    // NaN anywhere in the row, +Inf, or a row of all −Inf make lse non-finite.
    const double lse = static_cast<double>(mx) + std::log(sum_exp);
    if (!std::isfinite(lse)) {
      first_bad = std::min(first_bad, r);
      continue;
    }
    row_max[r] = mx;
    log_sum[r] = static_cast<T>(std::log(sum_exp));
    const double nll = lse - static_cast<double>(x[t]);
    const double uniform = lse - sum_x / static_cast<double>(C);  // mean over classes of −log p
    loss_sum += (1.0 - smoothing) * nll + (smoothing > 0 ? smoothing * uniform : 0.0);
    ++counted;
  }
  return {loss_sum, counted, first_bad < N ? first_bad : -1};
}

template <typename T, typename I>
void cross_entropy_bwd(const T* logits, const I* targets, const T* row_max, const T* log_sum,
                       T* dlogits, int64_t N, int64_t C, int64_t ignore_index, double smoothing,
                       double scale) {
  const T s = static_cast<T>(scale);
  const T hit = static_cast<T>(scale * (1.0 - smoothing));
  const T spread = static_cast<T>(scale * smoothing / static_cast<double>(C));
#pragma omp parallel for schedule(static) num_threads(threads_for(N* C))
  for (int64_t r = 0; r < N; ++r) {
    T* __restrict dx = dlogits + r * C;
    const int64_t t = static_cast<int64_t>(targets[r]);
    if (t == ignore_index) {
      std::fill(dx, dx + C, T(0));
      continue;
    }
    const T* __restrict x = logits + r * C;
    const T mx = row_max[r], ls = log_sum[r];
    for (int64_t c = 0; c < C; ++c) dx[c] = s * std::exp((x[c] - mx) - ls) - spread;
    dx[t] -= hit;
  }
}

template void softmax_fwd<float>(const float*, float*, int64_t, int64_t, int64_t, bool);
template void softmax_fwd<double>(const double*, double*, int64_t, int64_t, int64_t, bool);
template void softmax_bwd<float>(const float*, const float*, float*, int64_t, int64_t, int64_t,
                                 bool);
template void softmax_bwd<double>(const double*, const double*, double*, int64_t, int64_t, int64_t,
                                  bool);

#define SSM_INSTANTIATE_XENT(T, I)                                                                \
  template CrossEntropySums cross_entropy_fwd<T, I>(const T*, const I*, T*, T*, int64_t, int64_t, \
                                                    int64_t, double);                             \
  template void cross_entropy_bwd<T, I>(const T*, const I*, const T*, const T*, T*, int64_t,      \
                                        int64_t, int64_t, double, double);
SSM_INSTANTIATE_XENT(float, int32_t)
SSM_INSTANTIATE_XENT(float, int64_t)
SSM_INSTANTIATE_XENT(double, int32_t)
SSM_INSTANTIATE_XENT(double, int64_t)
#undef SSM_INSTANTIATE_XENT

}  // namespace ssm::cpu
