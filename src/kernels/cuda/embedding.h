#pragma once
// Internal: the embedding row gather and its scatter-add backward on CUDA. Device pointers,
// row-major contiguous; queued on `stream`. I is int32_t or int64_t.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

// out[i, :] = weight[ids[i], :] for i < n. An id outside [0, V) leaves its row unwritten and,
// when `first_bad` is not null, lowers *first_bad (set to UINT64_MAX by the caller) to its index.
template <typename T, typename I>
cudaError_t embedding_fwd(const T* weight, const I* ids, T* out, int64_t n, int64_t V, int64_t D,
                          unsigned long long* first_bad, cudaStream_t stream);

// grad_weight[ids[i], :] += grad_out[i, :] with atomic adds (ids already validated; grad_weight
// zeroed by the caller).
template <typename T, typename I>
cudaError_t embedding_bwd(const T* grad_out, const I* ids, T* grad_weight, int64_t n, int64_t D,
                          cudaStream_t stream);

}  // namespace ssm::kernels::cuda
