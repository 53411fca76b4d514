#pragma once
// Internal, CUDA builds only: checking every runtime call and kernel launch, and the library's
// stream. An error becomes an ssm::Error naming the op and the failing call.
#include <cuda_runtime_api.h>

#include "ssm/core/error.h"

namespace ssm::cuda::detail {

[[noreturn]] inline void fail(cudaError_t err, const char* op, const char* what) {
  SSM_FAIL("{}: CUDA error in {}: {} ({})", op, what, cudaGetErrorString(err),
           cudaGetErrorName(err));
}

cudaStream_t stream();  // created on first use; every kernel and copy of the library runs on it

}  // namespace ssm::cuda::detail

// SSM_CUDA_CHECK(cudaMemsetAsync(...), "selective_scan_bwd")
#define SSM_CUDA_CHECK(call, op)                                                           \
  do {                                                                                     \
    const cudaError_t ssm_cuda_err_ = (call);                                              \
    if (ssm_cuda_err_ != cudaSuccess) ::ssm::cuda::detail::fail(ssm_cuda_err_, op, #call); \
  } while (0)

// After a launch: the launch error (bad configuration, no kernel image for this device).
#define SSM_CUDA_CHECK_LAUNCH(err, op, kernel)                           \
  do {                                                                   \
    const cudaError_t ssm_cuda_err_ = (err);                             \
    if (ssm_cuda_err_ != cudaSuccess)                                    \
      ::ssm::cuda::detail::fail(ssm_cuda_err_, op, "launch of " kernel); \
  } while (0)
