// AdamW on CUDA: one grid-stride elementwise kernel updating p, m and v in place. Every product,
// sum, quotient and square root uses the round-to-nearest intrinsics, so nvcc cannot contract
// a·b + c into an FMA: each element then goes through the same IEEE operations, in the same
// order, as the CPU loop (which has no FMA in the portable, non -march=native build).
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/adamw.h"

namespace ssm::kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65536;

__device__ __forceinline__ float mul(float a, float b) {
  return __fmul_rn(a, b);
}
__device__ __forceinline__ double mul(double a, double b) {
  return __dmul_rn(a, b);
}
__device__ __forceinline__ float add(float a, float b) {
  return __fadd_rn(a, b);
}
__device__ __forceinline__ double add(double a, double b) {
  return __dadd_rn(a, b);
}
__device__ __forceinline__ float sub(float a, float b) {
  return __fsub_rn(a, b);
}
__device__ __forceinline__ double sub(double a, double b) {
  return __dsub_rn(a, b);
}
__device__ __forceinline__ float div(float a, float b) {
  return __fdiv_rn(a, b);
}
__device__ __forceinline__ double div(double a, double b) {
  return __ddiv_rn(a, b);
}
__device__ __forceinline__ float sqrt_rn(float a) {
  return __fsqrt_rn(a);
}
__device__ __forceinline__ double sqrt_rn(double a) {
  return __dsqrt_rn(a);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    adamw_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v,
                 int64_t n, AdamWScalars<T> s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    const T gi = g[i];
    const T mi = add(mul(s.b1, m[i]), mul(s.one_b1, gi));
    const T vi = add(mul(s.b2, v[i]), mul(mul(s.one_b2, gi), gi));
    m[i] = mi;
    v[i] = vi;
    const T denom = add(mul(sqrt_rn(vi), s.inv_sqrt_bias2), s.eps);
    p[i] = sub(mul(p[i], s.decay), div(mul(s.step_size, mi), denom));
  }
}

}  // namespace

template <typename T>
cudaError_t adamw_update(T* p, const T* g, T* m, T* v, int64_t n, AdamWScalars<T> s,
                         cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks);
  adamw_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, g, m, v, n, s);
  return cudaGetLastError();
}

template cudaError_t adamw_update<float>(float*, const float*, float*, float*, int64_t,
                                         AdamWScalars<float>, cudaStream_t);
template cudaError_t adamw_update<double>(double*, const double*, double*, double*, int64_t,
                                          AdamWScalars<double>, cudaStream_t);

}  // namespace ssm::kernels::cuda
