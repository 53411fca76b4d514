#pragma once
// Internal, device code only: the float and double libdevice functions under one name, so a
// kernel templated on T calls expf for float and exp for double (the accurate versions, never
// the __expf intrinsics), and the grid-stride launch shape the elementwise kernels share.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace ssm::kernels::cuda::math {

__device__ __forceinline__ float exp_(float v) {
  return expf(v);
}
__device__ __forceinline__ double exp_(double v) {
  return exp(v);
}
__device__ __forceinline__ float log_(float v) {
  return logf(v);
}
__device__ __forceinline__ double log_(double v) {
  return log(v);
}
__device__ __forceinline__ float log1p_(float v) {
  return log1pf(v);
}
__device__ __forceinline__ double log1p_(double v) {
  return log1p(v);
}
__device__ __forceinline__ float sqrt_(float v) {
  return sqrtf(v);
}
__device__ __forceinline__ double sqrt_(double v) {
  return sqrt(v);
}
__device__ __forceinline__ float tanh_(float v) {
  return tanhf(v);
}
__device__ __forceinline__ double tanh_(double v) {
  return tanh(v);
}
__device__ __forceinline__ float erf_(float v) {
  return erff(v);
}
__device__ __forceinline__ double erf_(double v) {
  return erf(v);
}

// std::max(m, v) as the CPU kernels compute it: a NaN v never replaces m.
template <typename T>
__device__ __forceinline__ T max_(T m, T v) {
  return m < v ? v : m;
}

}  // namespace ssm::kernels::cuda::math

namespace ssm::kernels::cuda {

constexpr int kElementwiseThreads = 256;

// Blocks for a grid-stride loop over n elements: enough to fill any current GPU several times
// over (65536 × 256 threads); the loop covers the rest.
inline unsigned grid_stride_blocks(int64_t n) {
  return static_cast<unsigned>(
      std::min<int64_t>((n + kElementwiseThreads - 1) / kElementwiseThreads, 65536));
}

}  // namespace ssm::kernels::cuda
