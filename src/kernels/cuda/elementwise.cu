// Elementwise device kernels: a grid-stride loop, one element per thread per step.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/elementwise.h"

namespace ssm::kernels::cuda {

namespace {

template <typename T>
__global__ void add_into_kernel(T* out, const T* src, int64_t n) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] += src[i];
}

}  // namespace

template <typename T>
cudaError_t add_into(T* out, const T* src, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  // Enough blocks to fill any current GPU several times over; the loop covers the rest.
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 65536);
  add_into_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(out, src, n);
  return cudaGetLastError();
}

template cudaError_t add_into<float>(float*, const float*, int64_t, cudaStream_t);
template cudaError_t add_into<double>(double*, const double*, int64_t, cudaStream_t);

}  // namespace ssm::kernels::cuda
