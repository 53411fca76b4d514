#pragma once
// Internal: elementwise device kernels the autograd engine needs (gradient accumulation).
// Device pointers, contiguous; queued on `stream`.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

// out[i] += src[i] for i < n.
template <typename T>
cudaError_t add_into(T* out, const T* src, int64_t n, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
