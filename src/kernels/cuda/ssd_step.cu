// The Mamba-2 decode step: per (b, h, p) one thread walks the N state entries of its row,
//   S[n] = exp(dt·A_h) S[n] + dt·x_p B[n],   y_p = Σ_n S[n] C[n] + D_h x_p,
// the CPU kernel's order of operations (kernels/cpu/ssd.cpp step_impl). Rows of one head are
// neighbouring threads, so B and C of the group are read by the whole warp from cache.
#include "kernels/cuda/ssd_step.h"

namespace ssm::kernels::cuda {

namespace {

template <typename T>
__device__ T exp_of(T v);
template <>
__device__ float exp_of(float v) {
  return expf(v);
}
template <>
__device__ double exp_of(double v) {
  return exp(v);
}

template <typename T>
__global__ void ssd_state_update_kernel(T* state, const T* x, const T* dt, const T* A, const T* B,
                                        const T* C, const T* D, T* y, int64_t batch, int64_t heads,
                                        int64_t groups, int64_t head_dim, int64_t n_state) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (row >= batch * heads * head_dim) return;
  const int64_t bh = row / head_dim, b = bh / heads, h = bh % heads;
  const int64_t bg = b * groups + h / (heads / groups);
  const T step = dt[bh];
  const T decay = exp_of(step * A[h]);
  const T dtx = step * x[row];
  const T* Bv = B + bg * n_state;
  const T* Cv = C + bg * n_state;
  T* S = state + row * n_state;
  T acc = 0;
  for (int64_t n = 0; n < n_state; ++n) {
    const T s = decay * S[n] + dtx * Bv[n];
    S[n] = s;
    acc += s * Cv[n];
  }
  y[row] = D ? acc + D[h] * x[row] : acc;
}

}  // namespace

template <typename T>
cudaError_t ssd_state_update(T* state, const T* x, const T* dt, const T* A, const T* B, const T* C,
                             const T* D, T* y, int64_t batch, int64_t heads, int64_t groups,
                             int64_t head_dim, int64_t n_state, cudaStream_t stream) {
  const int64_t rows = batch * heads * head_dim;
  if (rows == 0) return cudaSuccess;
  constexpr int kThreads = 128;
  const auto blocks = static_cast<unsigned>((rows + kThreads - 1) / kThreads);
  ssd_state_update_kernel<T><<<blocks, kThreads, 0, stream>>>(state, x, dt, A, B, C, D, y, batch,
                                                              heads, groups, head_dim, n_state);
  return cudaGetLastError();
}

template cudaError_t ssd_state_update<float>(float*, const float*, const float*, const float*,
                                             const float*, const float*, const float*, float*,
                                             int64_t, int64_t, int64_t, int64_t, int64_t,
                                             cudaStream_t);
template cudaError_t ssd_state_update<double>(double*, const double*, const double*, const double*,
                                              const double*, const double*, const double*, double*,
                                              int64_t, int64_t, int64_t, int64_t, int64_t,
                                              cudaStream_t);

}  // namespace ssm::kernels::cuda
