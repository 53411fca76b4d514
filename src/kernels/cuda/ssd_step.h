#pragma once
// Internal: the Mamba-2 decode step on CUDA (ssd_state_update of ssm/kernels/ssd.h). Device
// pointers, contiguous: state (B, H, P, N) updated in place, x (B, H, P), dt (B, H), A (H),
// B and C (B, G, N), D (H) or null; y (B, H, P). Queued on `stream`.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

template <typename T>
cudaError_t ssd_state_update(T* state, const T* x, const T* dt, const T* A, const T* B, const T* C,
                             const T* D, T* y, int64_t batch, int64_t heads, int64_t groups,
                             int64_t head_dim, int64_t n_state, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
