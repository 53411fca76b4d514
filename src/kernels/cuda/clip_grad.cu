// Gradient-norm clipping on CUDA. The sum of squares runs in two passes: a fixed number of
// blocks (a function of n alone) each sums a grid-stride share of x into one double partial,
// then one block adds the partials. The scaling is a plain elementwise product.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/clip_grad.h"

namespace ssm::kernels::cuda {

namespace {

constexpr int kThreads = 256;
// Enough partials to fill an H100/H200 several times over; few enough for one block to add.
constexpr int64_t kMaxPartials = 1024;
constexpr int kFinalThreads = 1024;
constexpr int64_t kMaxScaleBlocks = 65536;

int64_t partial_count(int64_t n) {
  // About 4 elements per thread before the grid is capped.
  return std::clamp<int64_t>((n + 4 * kThreads - 1) / (4 * kThreads), 1, kMaxPartials);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    sum_of_squares_partial_kernel(const T* __restrict__ x, int64_t n, double* partials) {
  __shared__ double scratch[kMaxWarps];
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  double acc = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    const double xi = static_cast<double>(x[i]);
    acc += xi * xi;
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void __launch_bounds__(kFinalThreads)
    sum_partials_kernel(const double* partials, int64_t count, double* out) {
  __shared__ double scratch[kMaxWarps];
  double acc = 0;
  for (int64_t i = threadIdx.x; i < count; i += kFinalThreads) acc += partials[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) *out = acc;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) scale_kernel(const T* x, T* out, int64_t n, T coef) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride)
    out[i] = x[i] * coef;
}

}  // namespace

int64_t sum_of_squares_scratch(int64_t n) {
  return partial_count(n);
}

template <typename T>
cudaError_t sum_of_squares(const T* x, int64_t n, double* scratch, double* out,
                           cudaStream_t stream) {
  const int64_t partials = partial_count(n);
  // n == 0 still writes *out (a zero) through the partial pass: its one block sums nothing.
  sum_of_squares_partial_kernel<T>
      <<<static_cast<unsigned>(partials), kThreads, 0, stream>>>(x, n, scratch);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  sum_partials_kernel<<<1, kFinalThreads, 0, stream>>>(scratch, partials, out);
  return cudaGetLastError();
}

template <typename T>
cudaError_t scale(const T* x, T* out, int64_t n, T coef, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxScaleBlocks);
  scale_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(x, out, n, coef);
  return cudaGetLastError();
}

template cudaError_t sum_of_squares<float>(const float*, int64_t, double*, double*, cudaStream_t);
template cudaError_t sum_of_squares<double>(const double*, int64_t, double*, double*, cudaStream_t);
template cudaError_t scale<float>(const float*, float*, int64_t, float, cudaStream_t);
template cudaError_t scale<double>(const double*, double*, int64_t, double, cudaStream_t);

}  // namespace ssm::kernels::cuda
