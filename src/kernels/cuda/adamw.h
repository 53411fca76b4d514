#pragma once
// Internal: the fused AdamW update of one contiguous parameter on CUDA, with the CPU kernel's
// contract (src/optim/adamw.cpp). The scalars arrive already rounded to T by the caller, which
// computes them once for both backends; per element, in T and in this order:
//   m ← b1·m + one_b1·g,   v ← b2·v + (one_b2·g)·g
//   p ← p·decay − (step_size·m) / (√v · inv_sqrt_bias2 + eps)
// Device pointers, n elements each; queued on `stream`.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

template <typename T>
struct AdamWScalars {
  T b1, b2, one_b1, one_b2;  // β1, β2, 1 − β1, 1 − β2
  T decay;                   // 1 − lr·weight_decay
  T step_size;               // lr / (1 − β1ᵗ)
  T inv_sqrt_bias2;          // 1 / √(1 − β2ᵗ)
  T eps;
};

template <typename T>
cudaError_t adamw_update(T* p, const T* g, T* m, T* v, int64_t n, AdamWScalars<T> s,
                         cudaStream_t stream);

}  // namespace ssm::kernels::cuda
