// Softmax, log-softmax and softmax cross-entropy on CUDA. A row that is contiguous (the last
// axis, and every cross-entropy row) gets one block: a pass for the maximum, a pass summing
// exp(x − max) in double (the exponential itself in T, as on the CPU), and a pass writing the
// result; rows of a vocabulary (50k floats) stay in L2 between the passes. A softmax over a
// strided axis (inner > 1) gets one thread per (outer, inner) column instead, neighbouring
// threads reading neighbouring columns.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/softmax.h"

namespace ssm::kernels::cuda {

namespace {

using namespace math;

// Threads per row: about 8 values per thread, between one warp and 1024 threads.
int row_threads(int64_t n) {
  int t = 32;
  while (t < 1024 && int64_t{t} * 8 < n) t *= 2;
  return t;
}

template <typename T>
__device__ __forceinline__ T neg_inf() {
  return -static_cast<T>(INFINITY);
}

// ---------------------------------------------------------------- softmax over rows

template <typename T>
__global__ void softmax_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n,
                                    bool log) {
  __shared__ T tmax[kMaxWarps];
  __shared__ double tsum[kMaxWarps];
  const T* xr = x + int64_t{blockIdx.x} * n;
  T* yr = y + int64_t{blockIdx.x} * n;
  T mx = neg_inf<T>();
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) mx = max_(mx, xr[i]);
  mx = block_max(mx, tmax);
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += static_cast<double>(exp_(xr[i] - mx));
  s = block_sum(s, tsum);
  if (log) {
    // (x − max) is exact for nearby values; adding max back first would round at its scale.
    const T ls = static_cast<T>(::log(s));
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = (xr[i] - mx) - ls;
  } else {
    const T inv = static_cast<T>(1.0 / s);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = exp_(xr[i] - mx) * inv;
  }
}

template <typename T>
__global__ void softmax_bwd_rows_kernel(const T* __restrict__ dy, const T* __restrict__ y,
                                        T* __restrict__ dx, int64_t n, bool log) {
  __shared__ double tsum[kMaxWarps];
  const int64_t base = int64_t{blockIdx.x} * n;
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    acc +=
        log ? static_cast<double>(dy[base + i]) : static_cast<double>(dy[base + i] * y[base + i]);
  const T s = static_cast<T>(block_sum(acc, tsum));
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const int64_t k = base + i;
    dx[k] = log ? dy[k] - exp_(y[k]) * s : y[k] * (dy[k] - s);
  }
}

// ---------------------------------------------------------------- softmax over a strided axis

template <typename T>
__global__ void softmax_columns_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outer,
                                       int64_t n, int64_t inner, bool log) {
  const int64_t columns = outer * inner;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; c < columns; c += stride) {
    const int64_t o = c / inner, j = c - o * inner;
    const T* xc = x + o * n * inner + j;
    T* yc = y + o * n * inner + j;
    T mx = neg_inf<T>();
    for (int64_t i = 0; i < n; ++i) mx = max_(mx, xc[i * inner]);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(exp_(xc[i * inner] - mx));
    if (log) {
      const T ls = static_cast<T>(::log(s));
      for (int64_t i = 0; i < n; ++i) yc[i * inner] = (xc[i * inner] - mx) - ls;
    } else {
      const T inv = static_cast<T>(1.0 / s);
      for (int64_t i = 0; i < n; ++i) yc[i * inner] = exp_(xc[i * inner] - mx) * inv;
    }
  }
}

template <typename T>
__global__ void softmax_bwd_columns_kernel(const T* __restrict__ dy, const T* __restrict__ y,
                                           T* __restrict__ dx, int64_t outer, int64_t n,
                                           int64_t inner, bool log) {
  const int64_t columns = outer * inner;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; c < columns; c += stride) {
    const int64_t o = c / inner, j = c - o * inner;
    const int64_t base = o * n * inner + j;
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = base + i * inner;
      acc += log ? static_cast<double>(dy[k]) : static_cast<double>(dy[k] * y[k]);
    }
    const T s = static_cast<T>(acc);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = base + i * inner;
      dx[k] = log ? dy[k] - exp_(y[k]) * s : y[k] * (dy[k] - s);
    }
  }
}

// ---------------------------------------------------------------- cross-entropy

enum RowState : int { kIgnored = 0, kCounted = 1, kBadTarget = 2, kNotFinite = 3 };

template <typename T, typename I>
__global__ void xent_rows_kernel(const T* __restrict__ logits, const I* __restrict__ targets,
                                 T* __restrict__ row_max, T* __restrict__ log_sum,
                                 double* __restrict__ row_loss, int* __restrict__ row_state,
                                 int64_t C, int64_t ignore_index, double smoothing) {
  __shared__ T tmax[kMaxWarps];
  __shared__ double tsum[kMaxWarps];
  const int64_t r = blockIdx.x;
  const int64_t t = static_cast<int64_t>(targets[r]);
  const bool ignored = t == ignore_index, bad = !ignored && (t < 0 || t >= C);
  if (ignored || bad) {  // the same for the whole block, so no thread waits at a barrier
    if (threadIdx.x == 0) {
      row_max[r] = log_sum[r] = T(0);
      row_loss[r] = 0;
      row_state[r] = ignored ? kIgnored : kBadTarget;
    }
    return;
  }
  const T* x = logits + r * C;
  T mx = neg_inf<T>();
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) mx = max_(mx, x[c]);
  mx = block_max(mx, tmax);
  double sum_exp = 0, sum_x = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const T v = x[c];
    sum_exp += static_cast<double>(exp_(v - mx));
    sum_x += static_cast<double>(v);
  }
  sum_exp = block_sum(sum_exp, tsum);
  if (smoothing > 0) sum_x = block_sum(sum_x, tsum);
  if (threadIdx.x != 0) return;
  // NaN anywhere in the row, +Inf, or a row of all −Inf make lse non-finite.
  const double lse = static_cast<double>(mx) + ::log(sum_exp);
  if (!isfinite(lse)) {
    row_max[r] = log_sum[r] = T(0);
    row_loss[r] = 0;
    row_state[r] = kNotFinite;
    return;
  }
  row_max[r] = mx;
  log_sum[r] = static_cast<T>(::log(sum_exp));
  const double nll = lse - static_cast<double>(x[t]);
  const double uniform = lse - sum_x / static_cast<double>(C);  // mean over classes of −log p
  row_loss[r] = (1.0 - smoothing) * nll + (smoothing > 0 ? smoothing * uniform : 0.0);
  row_state[r] = kCounted;
}

constexpr int kSummaryThreads = 1024;

// One block: every thread takes rows tid, tid + 1024, …; the partials are combined in the fixed
// order of block_reduce.
template <typename T, typename I>
__global__ void __launch_bounds__(kSummaryThreads)
    xent_summary_kernel(const I* __restrict__ targets, const double* __restrict__ row_loss,
                        const int* __restrict__ row_state, CrossEntropySummary* summary, T* loss,
                        int64_t N) {
  __shared__ double dsc[kMaxWarps];
  __shared__ long long isc[kMaxWarps];
  double s = 0;
  long long counted = 0, bad_target = LLONG_MAX, bad_row = LLONG_MAX;
  for (int64_t r = threadIdx.x; r < N; r += blockDim.x) {
    const int st = row_state[r];
    if (st == kCounted) {
      s += row_loss[r];
      ++counted;
    } else if (st == kBadTarget) {
      bad_target = min(bad_target, static_cast<long long>(r));
    } else if (st == kNotFinite) {
      bad_row = min(bad_row, static_cast<long long>(r));
    }
  }
  s = block_sum(s, dsc);
  counted = block_sum(counted, isc);
  bad_target = block_min(bad_target, isc);
  bad_row = block_min(bad_row, isc);
  if (threadIdx.x != 0) return;
  summary->loss_sum = s;
  summary->counted = counted;
  summary->bad_target_index = bad_target == LLONG_MAX ? -1 : bad_target;
  summary->bad_target_value =
      bad_target == LLONG_MAX ? 0 : static_cast<long long>(targets[bad_target]);
  summary->bad_row = bad_row == LLONG_MAX ? -1 : bad_row;
  // A batch whose targets are all ignored has loss 0 (and zero gradients), as on the CPU.
  loss[0] = static_cast<T>(counted > 0 ? s / static_cast<double>(counted) : 0.0);
}

template <typename T, typename I>
__global__ void xent_bwd_kernel(const T* __restrict__ logits, const I* __restrict__ targets,
                                const T* __restrict__ row_max, const T* __restrict__ log_sum,
                                const T* __restrict__ gloss, T* __restrict__ dlogits, int64_t C,
                                int64_t ignore_index, double smoothing, int64_t counted) {
  const int64_t r = blockIdx.x;
  T* dx = dlogits + r * C;
  const int64_t t = static_cast<int64_t>(targets[r]);
  if (t == ignore_index) {
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) dx[c] = T(0);
    return;
  }
  // The CPU op's scalars: scale = g / counted in double, then each factor rounded to T.
  const double scale =
      counted > 0 ? static_cast<double>(gloss[0]) / static_cast<double>(counted) : 0.0;
  const T s = static_cast<T>(scale);
  const T hit = static_cast<T>(scale * (1.0 - smoothing));
  const T spread = static_cast<T>(scale * smoothing / static_cast<double>(C));
  const T mx = row_max[r], ls = log_sum[r];
  const T* x = logits + r * C;
  // softmax = exp((x − max) − log Σ exp(x − max)), the shift split as in the forward.
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    T v = exp_((x[c] - mx) - ls) * s - spread;
    if (c == t) v -= hit;
    dx[c] = v;
  }
}

unsigned column_blocks(int64_t columns) {
  constexpr int64_t kThreads = 256;
  return static_cast<unsigned>(std::min<int64_t>((columns + kThreads - 1) / kThreads, 65536));
}

bool grid_fits(int64_t rows) {
  return rows <= 0x7fffffff;
}

}  // namespace

template <typename T>
cudaError_t softmax_fwd(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log,
                        cudaStream_t stream) {
  if (outer * n * inner == 0) return cudaSuccess;
  if (inner == 1) {
    if (!grid_fits(outer)) return cudaErrorInvalidConfiguration;
    softmax_rows_kernel<T>
        <<<static_cast<unsigned>(outer), row_threads(n), 0, stream>>>(x, y, n, log);
  } else {
    softmax_columns_kernel<T>
        <<<column_blocks(outer * inner), 256, 0, stream>>>(x, y, outer, n, inner, log);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t softmax_bwd(const T* dy, const T* y, T* dx, int64_t outer, int64_t n, int64_t inner,
                        bool log, cudaStream_t stream) {
  if (outer * n * inner == 0) return cudaSuccess;
  if (inner == 1) {
    if (!grid_fits(outer)) return cudaErrorInvalidConfiguration;
    softmax_bwd_rows_kernel<T>
        <<<static_cast<unsigned>(outer), row_threads(n), 0, stream>>>(dy, y, dx, n, log);
  } else {
    softmax_bwd_columns_kernel<T>
        <<<column_blocks(outer * inner), 256, 0, stream>>>(dy, y, dx, outer, n, inner, log);
  }
  return cudaGetLastError();
}

template <typename T, typename I>
cudaError_t cross_entropy_fwd(const T* logits, const I* targets, T* row_max, T* log_sum,
                              double* row_loss, int* row_state, CrossEntropySummary* summary,
                              T* loss, int64_t N, int64_t C, int64_t ignore_index, double smoothing,
                              cudaStream_t stream) {
  if (!grid_fits(N)) return cudaErrorInvalidConfiguration;
  if (N > 0) {
    xent_rows_kernel<T, I><<<static_cast<unsigned>(N), row_threads(C), 0, stream>>>(
        logits, targets, row_max, log_sum, row_loss, row_state, C, ignore_index, smoothing);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  xent_summary_kernel<T, I>
      <<<1, kSummaryThreads, 0, stream>>>(targets, row_loss, row_state, summary, loss, N);
  return cudaGetLastError();
}

template <typename T, typename I>
cudaError_t cross_entropy_bwd(const T* logits, const I* targets, const T* row_max, const T* log_sum,
                              const T* gloss, T* dlogits, int64_t N, int64_t C,
                              int64_t ignore_index, double smoothing, int64_t counted,
                              cudaStream_t stream) {
  if (N == 0) return cudaSuccess;
  if (!grid_fits(N)) return cudaErrorInvalidConfiguration;
  xent_bwd_kernel<T, I><<<static_cast<unsigned>(N), row_threads(C), 0, stream>>>(
      logits, targets, row_max, log_sum, gloss, dlogits, C, ignore_index, smoothing, counted);
  return cudaGetLastError();
}

template cudaError_t softmax_fwd<float>(const float*, float*, int64_t, int64_t, int64_t, bool,
                                        cudaStream_t);
template cudaError_t softmax_fwd<double>(const double*, double*, int64_t, int64_t, int64_t, bool,
                                         cudaStream_t);
template cudaError_t softmax_bwd<float>(const float*, const float*, float*, int64_t, int64_t,
                                        int64_t, bool, cudaStream_t);
template cudaError_t softmax_bwd<double>(const double*, const double*, double*, int64_t, int64_t,
                                         int64_t, bool, cudaStream_t);

#define SSM_INSTANTIATE_XENT(T, I)                                                               \
  template cudaError_t cross_entropy_fwd<T, I>(const T*, const I*, T*, T*, double*, int*,        \
                                               CrossEntropySummary*, T*, int64_t, int64_t,       \
                                               int64_t, double, cudaStream_t);                   \
  template cudaError_t cross_entropy_bwd<T, I>(const T*, const I*, const T*, const T*, const T*, \
                                               T*, int64_t, int64_t, int64_t, double, int64_t,   \
                                               cudaStream_t);
SSM_INSTANTIATE_XENT(float, int32_t)
SSM_INSTANTIATE_XENT(float, int64_t)
SSM_INSTANTIATE_XENT(double, int32_t)
SSM_INSTANTIATE_XENT(double, int64_t)
#undef SSM_INSTANTIATE_XENT

}  // namespace ssm::kernels::cuda
