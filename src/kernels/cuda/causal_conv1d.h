#pragma once
// Internal: depthwise causal conv1d on CUDA, the CPU kernel's contract
// (kernels/cpu/causal_conv1d.h) on device pointers, queued on `stream`. Contiguous buffers; T =
// float or double. Each returns the launch error.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

constexpr int64_t kConvMaxWidth = 16;  // K limit (the weight gradient keeps K sums per thread)

template <typename T>
cudaError_t causal_conv1d_fwd(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t D,
                              int64_t L, int64_t K, cudaStream_t stream);

// dx (B, D, L), dw (D, K), dbias (D); each may be null. dw and dbias are written (not added).
template <typename T>
cudaError_t causal_conv1d_bwd(const T* dy, const T* x, const T* w, T* dx, T* dw, T* dbias,
                              int64_t B, int64_t D, int64_t L, int64_t K, cudaStream_t stream);

template <typename T>
cudaError_t causal_conv1d_update(const T* x_t, T* state, const T* w, const T* bias, T* y_t,
                                 int64_t B, int64_t D, int64_t K, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
