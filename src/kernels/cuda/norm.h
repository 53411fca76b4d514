#pragma once
// Internal: (gated) RMSNorm on CUDA with the CPU kernel's contract (kernels/cpu/norm.h):
// u = x ⊙ SiLU(z) (u = x when z is null), y = u · rstd · w, one rstd (double) per group of
// `group` channels of each row. Device pointers, contiguous; queued on `stream`.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

template <typename T>
cudaError_t rms_norm_fwd(const T* x, const T* z, const T* w, T* y, double* rstd, int64_t rows,
                         int64_t D, int64_t group, double eps, cudaStream_t stream);

// dx, dz, dw may be null. dw is accumulated with atomics and must be zeroed by the caller.
template <typename T>
cudaError_t rms_norm_bwd(const T* dy, const T* x, const T* z, const T* w, const double* rstd, T* dx,
                         T* dz, T* dw, int64_t rows, int64_t D, int64_t group, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
