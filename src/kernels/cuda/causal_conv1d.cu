// Depthwise causal conv1d on CUDA (Mamba's short convolution):
//   y[b,d,l] = bias[d] + Σ_{j<K} w[d,j] · x[b,d,l−(K−1)+j]
// Forward and input gradient: one thread per output element (neighbouring threads read
// neighbouring inputs, so the K-fold re-reads hit the cache). Weight and bias gradients: one
// block per channel d, its threads striding over (b, l) with K partial sums each, then a block
// reduction; no atomics, so the result does not depend on timing.
#include <cuda_runtime.h>

#include "kernels/cuda/causal_conv1d.h"

namespace ssm::kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void conv_fwd_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                const T* __restrict__ bias, T* __restrict__ y, int64_t D, int64_t L,
                                int64_t K, int64_t total) {
  const int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t l = i % L, bd = i / L, d = bd % D;
  const T* xr = x + bd * L;
  T acc = bias ? bias[d] : T(0);
  for (int64_t j = 0; j < K; ++j) {
    const int64_t src = l - (K - 1) + j;
    if (src >= 0) acc += w[d * K + j] * xr[src];
  }
  y[i] = acc;
}

template <typename T>
__global__ void conv_dx_kernel(const T* __restrict__ dy, const T* __restrict__ w,
                               T* __restrict__ dx, int64_t D, int64_t L, int64_t K, int64_t total) {
  const int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t m = i % L, bd = i / L, d = bd % D;
  const T* dyr = dy + bd * L;
  T acc = T(0);
  for (int64_t j = 0; j < K; ++j) {
    const int64_t l = m + (K - 1) - j;
    if (l < L) acc += w[d * K + j] * dyr[l];
  }
  dx[i] = acc;
}

template <typename T>
__device__ T block_sum(T v, T* scratch) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // scratch may still be read from the previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T total = T(0);
  for (int k = 0; k < kThreads / 32; ++k) total += scratch[k];
  return total;
}

template <typename T>
__global__ void conv_dw_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                               T* __restrict__ dw, T* __restrict__ dbias, int64_t B, int64_t D,
                               int64_t L, int64_t K) {
  __shared__ T scratch[kThreads / 32];
  const int64_t d = blockIdx.x;
  T acc[kConvMaxWidth];
  T acc_bias = T(0);
#pragma unroll
  for (int j = 0; j < kConvMaxWidth; ++j) acc[j] = T(0);
  for (int64_t i = threadIdx.x; i < B * L; i += kThreads) {
    const int64_t b = i / L, l = i % L;
    const T* xr = x + (b * D + d) * L;
    const T g = dy[(b * D + d) * L + l];
    acc_bias += g;
#pragma unroll
    for (int j = 0; j < kConvMaxWidth; ++j) {
      const int64_t src = l - (K - 1) + j;
      if (j < K && src >= 0) acc[j] += g * xr[src];
    }
  }
  for (int j = 0; j < K; ++j) {
    const T s = block_sum(acc[j], scratch);
    if (threadIdx.x == 0 && dw) dw[d * K + j] = s;
  }
  const T s = block_sum(acc_bias, scratch);
  if (threadIdx.x == 0 && dbias) dbias[d] = s;
}

template <typename T>
__global__ void conv_update_kernel(const T* __restrict__ x_t, T* __restrict__ state,
                                   const T* __restrict__ w, const T* __restrict__ bias,
                                   T* __restrict__ y_t, int64_t D, int64_t K, int64_t total) {
  const int64_t bd = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (bd >= total) return;
  const int64_t d = bd % D;
  T* s = state + bd * (K - 1);
  const T xv = x_t[bd];
  T acc = bias ? bias[d] : T(0);
  for (int64_t j = 0; j < K - 1; ++j) acc += w[d * K + j] * s[j];
  acc += w[d * K + K - 1] * xv;
  for (int64_t j = 0; j + 1 < K - 1; ++j) s[j] = s[j + 1];
  if (K > 1) s[K - 2] = xv;
  y_t[bd] = acc;
}

dim3 blocks_for(int64_t n) {
  return dim3(static_cast<unsigned>((n + kThreads - 1) / kThreads));
}

}  // namespace

template <typename T>
cudaError_t causal_conv1d_fwd(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t D,
                              int64_t L, int64_t K, cudaStream_t stream) {
  const int64_t total = B * D * L;
  if (total == 0) return cudaSuccess;
  conv_fwd_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(x, w, bias, y, D, L, K, total);
  return cudaGetLastError();
}

template <typename T>
cudaError_t causal_conv1d_bwd(const T* dy, const T* x, const T* w, T* dx, T* dw, T* dbias,
                              int64_t B, int64_t D, int64_t L, int64_t K, cudaStream_t stream) {
  const int64_t total = B * D * L;
  if (dx && total > 0) {
    conv_dx_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(dy, w, dx, D, L, K, total);
    if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  if (dw || dbias) {
    conv_dw_kernel<T>
        <<<static_cast<unsigned>(D), kThreads, 0, stream>>>(dy, x, dw, dbias, B, D, L, K);
    return cudaGetLastError();
  }
  return cudaSuccess;
}

template <typename T>
cudaError_t causal_conv1d_update(const T* x_t, T* state, const T* w, const T* bias, T* y_t,
                                 int64_t B, int64_t D, int64_t K, cudaStream_t stream) {
  const int64_t total = B * D;
  if (total == 0) return cudaSuccess;
  conv_update_kernel<T>
      <<<blocks_for(total), kThreads, 0, stream>>>(x_t, state, w, bias, y_t, D, K, total);
  return cudaGetLastError();
}

#define SSM_INSTANTIATE(T)                                                                      \
  template cudaError_t causal_conv1d_fwd<T>(const T*, const T*, const T*, T*, int64_t, int64_t, \
                                            int64_t, int64_t, cudaStream_t);                    \
  template cudaError_t causal_conv1d_bwd<T>(const T*, const T*, const T*, T*, T*, T*, int64_t,  \
                                            int64_t, int64_t, int64_t, cudaStream_t);           \
  template cudaError_t causal_conv1d_update<T>(const T*, T*, const T*, const T*, T*, int64_t,   \
                                               int64_t, int64_t, cudaStream_t);
SSM_INSTANTIATE(float)
SSM_INSTANTIATE(double)
#undef SSM_INSTANTIATE

}  // namespace ssm::kernels::cuda
