#include "kernels/cpu/softmax.h"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>

namespace ssm::cpu {

namespace {

constexpr int64_t kParallelWork = int64_t{1} << 15;
// Values handled together: columns of the inner axis when the softmax dim is not the last
// one, and the chunk of a cross-entropy row exponentiated into a stack buffer.
constexpr int64_t kBlock = 128;

int threads_for(int64_t work) {
  return work >= kParallelWork ? omp_get_max_threads() : 1;
}

template <typename T>
using Vec = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T>
using ConstVec = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// out = exp(in − shift) over n values. Eigen's exp is vectorised (std::exp is a library
// call the compiler will not vectorise without -ffast-math: ~5× slower in float32) and
// accurate to ~1 ulp; it keeps NaN and +Inf.
template <typename T>
void exp_shifted(const T* in, T shift, T* out, int64_t n) {
  Vec<T>(out, n) = (ConstVec<T>(in, n) - shift).exp();
}

template <typename T>
T max_of(const T* __restrict x, int64_t n) {
  T mx = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  return mx;
}

template <typename T>
double sum_of(const T* __restrict x, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}

// One row of contiguous length n.
template <typename T>
void softmax_row(const T* __restrict x, T* __restrict y, int64_t n, bool log) {
  const T mx = max_of(x, n);
  exp_shifted(x, mx, y, n);  // for log-softmax y is only scratch here
  const double sum = sum_of(y, n);
  if (log) {
    // (x − max) is exact for nearby values; adding max back first would round at its scale.
    const T log_sum = static_cast<T>(std::log(sum));
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mx) - log_sum;
  } else {
    const T inv = static_cast<T>(1.0 / sum);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

// Columns [j0, j0 + w) of one (n, inner) slab: the normalised axis is strided by inner, so
// each step along it reads w contiguous values for w independent softmaxes.
template <typename T>
void softmax_columns(const T* __restrict x, T* __restrict y, int64_t n, int64_t inner, int64_t w,
                     bool log) {
  T mx[kBlock], e[kBlock], post[kBlock];
  double sum[kBlock];
  for (int64_t j = 0; j < w; ++j) {
    mx[j] = -std::numeric_limits<T>::infinity();
    sum[j] = 0;
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w; ++j) mx[j] = std::max(mx[j], x[i * inner + j]);
  for (int64_t i = 0; i < n; ++i) {
    T* out = log ? e : y + i * inner;
    Vec<T>(out, w) = (ConstVec<T>(x + i * inner, w) - ConstVec<T>(mx, w)).exp();
    for (int64_t j = 0; j < w; ++j) sum[j] += out[j];
  }
  for (int64_t j = 0; j < w; ++j)
    post[j] = log ? static_cast<T>(std::log(sum[j])) : static_cast<T>(1.0 / sum[j]);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w; ++j) {
      const int64_t k = i * inner + j;
      y[k] = log ? (x[k] - mx[j]) - post[j] : y[k] * post[j];
    }
}

template <typename T>
void softmax_bwd_row(const T* __restrict dy, const T* __restrict y, T* __restrict dx, int64_t n,
                     bool log) {
  if (log) {
    const T s = static_cast<T>(sum_of(dy, n));
    Vec<T>(dx, n) = ConstVec<T>(dy, n) - ConstVec<T>(y, n).exp() * s;
  } else {
    double acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) acc += dy[i] * y[i];
    const T s = static_cast<T>(acc);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dx[i] = y[i] * (dy[i] - s);
  }
}

template <typename T>
void softmax_bwd_columns(const T* __restrict dy, const T* __restrict y, T* __restrict dx, int64_t n,
                         int64_t inner, int64_t w, bool log) {
  double acc[kBlock];
  T s[kBlock];
  for (int64_t j = 0; j < w; ++j) acc[j] = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w; ++j)
      acc[j] += log ? dy[i * inner + j] : dy[i * inner + j] * y[i * inner + j];
  for (int64_t j = 0; j < w; ++j) s[j] = static_cast<T>(acc[j]);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = i * inner;
    if (log) {
      Vec<T>(dx + k, w) = ConstVec<T>(dy + k, w) - ConstVec<T>(y + k, w).exp() * ConstVec<T>(s, w);
    } else {
      for (int64_t j = 0; j < w; ++j) dx[k + j] = y[k + j] * (dy[k + j] - s[j]);
    }
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
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t t = 0; t < outer * blocks; ++t) {
    const int64_t o = t / blocks, j0 = (t % blocks) * kBlock;
    const int64_t off = o * n * inner + j0;
    softmax_columns(x + off, y + off, n, inner, std::min(kBlock, inner - j0), log);
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
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t t = 0; t < outer * blocks; ++t) {
    const int64_t o = t / blocks, j0 = (t % blocks) * kBlock;
    const int64_t off = o * n * inner + j0;
    softmax_bwd_columns(dy + off, y + off, dx + off, n, inner, std::min(kBlock, inner - j0), log);
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
    const T mx = max_of(x, C);
    double sum_exp = 0;
    T e[kBlock];  // the row's exponentials, a chunk at a time
    for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
      const int64_t w = std::min(kBlock, C - c0);
      exp_shifted(x + c0, mx, e, w);
      sum_exp += sum_of(e, w);
    }
    const double sum_x = smoothing > 0 ? sum_of(x, C) : 0.0;
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
    // softmax = exp((x − max) − log Σ exp(x − max)), the shift split as in the forward.
    Vec<T>(dx, C) = ((ConstVec<T>(logits + r * C, C) - row_max[r]) - log_sum[r]).exp() * s - spread;
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
