// (Gated) RMSNorm on CUDA: one block per (row, group), statistics in double.
//   u = x ⊙ SiLU(z),  r = (Σ u² / G + eps)^(−1/2),  y = u · r · w
// Backward, with gu = dy ⊙ w:  du = r · gu − r³ · u · (Σ gu ⊙ u) / G,
//   dx = du ⊙ SiLU(z),  dz = du ⊙ x ⊙ SiLU'(z),  dw += dy ⊙ u · r (atomics over rows).
#include <cuda_runtime.h>

#include "kernels/cuda/norm.h"

namespace ssm::kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ __forceinline__ T sigmoid(T v) {
  return T(1) / (T(1) + exp(-v));
}

// Sum over the block, returned to every thread.
__device__ double block_sum(double v, double* scratch) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  double total = 0;
#pragma unroll
  for (int k = 0; k < kThreads / 32; ++k) total += scratch[k];
  __syncthreads();  // scratch is reused by the next call
  return total;
}

template <typename T>
__device__ __forceinline__ double gated(const T* x, const T* z, int64_t i) {
  const double xv = x[i];
  if (!z) return xv;
  const double zv = z[i];
  return xv * zv * sigmoid(zv);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    rms_norm_fwd_kernel(const T* x, const T* z, const T* w, T* y, double* rstd, int64_t D,
                        int64_t group, double eps) {
  __shared__ double scratch[kThreads / 32];
  const int64_t groups = D / group;
  const int64_t row = blockIdx.x / groups, gi = blockIdx.x % groups;
  const int64_t base = row * D + gi * group;
  double ss = 0;
  for (int64_t i = threadIdx.x; i < group; i += kThreads) {
    const double u = gated(x, z, base + i);
    ss += u * u;
  }
  const double r = rsqrt(block_sum(ss, scratch) / double(group) + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  for (int64_t i = threadIdx.x; i < group; i += kThreads) {
    const double u = gated(x, z, base + i);
    const double wv = w ? double(w[gi * group + i]) : 1.0;
    y[base + i] = T(u * r * wv);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    rms_norm_bwd_kernel(const T* dy, const T* x, const T* z, const T* w, const double* rstd, T* dx,
                        T* dz, T* dw, int64_t D, int64_t group) {
  __shared__ double scratch[kThreads / 32];
  const int64_t groups = D / group;
  const int64_t row = blockIdx.x / groups, gi = blockIdx.x % groups;
  const int64_t base = row * D + gi * group;
  const double r = rstd[blockIdx.x];
  double dot = 0;  // Σ gu ⊙ u
  for (int64_t i = threadIdx.x; i < group; i += kThreads) {
    const double wv = w ? double(w[gi * group + i]) : 1.0;
    dot += double(dy[base + i]) * wv * gated(x, z, base + i);
  }
  dot = block_sum(dot, scratch);
  const double coef = r * r * r * dot / double(group);
  for (int64_t i = threadIdx.x; i < group; i += kThreads) {
    const int64_t c = gi * group + i;
    const double wv = w ? double(w[c]) : 1.0;
    const double g = dy[base + i];
    const double u = gated(x, z, base + i);
    const double du = r * g * wv - coef * u;
    if (dw) atomicAdd(dw + c, T(g * u * r));
    if (!z) {
      if (dx) dx[base + i] = T(du);
      continue;
    }
    const double xv = x[base + i], zv = z[base + i];
    const double s = sigmoid(zv);
    if (dx) dx[base + i] = T(du * zv * s);
    if (dz) dz[base + i] = T(du * xv * s * (1.0 + zv * (1.0 - s)));
  }
}

}  // namespace

template <typename T>
cudaError_t rms_norm_fwd(const T* x, const T* z, const T* w, T* y, double* rstd, int64_t rows,
                         int64_t D, int64_t group, double eps, cudaStream_t stream) {
  const int64_t blocks = rows * (D / group);
  if (blocks == 0) return cudaSuccess;
  rms_norm_fwd_kernel<T>
      <<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(x, z, w, y, rstd, D, group, eps);
  return cudaGetLastError();
}

template <typename T>
cudaError_t rms_norm_bwd(const T* dy, const T* x, const T* z, const T* w, const double* rstd, T* dx,
                         T* dz, T* dw, int64_t rows, int64_t D, int64_t group,
                         cudaStream_t stream) {
  const int64_t blocks = rows * (D / group);
  if (blocks == 0) return cudaSuccess;
  rms_norm_bwd_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      dy, x, z, w, rstd, dx, dz, dw, D, group);
  return cudaGetLastError();
}

template cudaError_t rms_norm_fwd<float>(const float*, const float*, const float*, float*, double*,
                                         int64_t, int64_t, int64_t, double, cudaStream_t);
template cudaError_t rms_norm_fwd<double>(const double*, const double*, const double*, double*,
                                          double*, int64_t, int64_t, int64_t, double, cudaStream_t);
template cudaError_t rms_norm_bwd<float>(const float*, const float*, const float*, const float*,
                                         const double*, float*, float*, float*, int64_t, int64_t,
                                         int64_t, cudaStream_t);
template cudaError_t rms_norm_bwd<double>(const double*, const double*, const double*,
                                          const double*, const double*, double*, double*, double*,
                                          int64_t, int64_t, int64_t, cudaStream_t);

}  // namespace ssm::kernels::cuda
