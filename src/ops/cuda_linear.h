#pragma once
// Internal: the CUDA half of matmul and linear (arguments validated by ops/linear.cpp, all on
// the GPU). Products are cuBLAS GEMMs (kernels/cuda/gemm.h). Without the backend they throw
// ssm::Error.
#include "ssm/core/tensor.h"

namespace ssm {

// a (…, M, K) @ b (…, K, N) over the broadcast batch `batch` → (batch…, M, N).
Tensor cuda_matmul(const Tensor& a, const Tensor& b, const Shape& batch);
// x (…, in) · Wᵀ + b with W (out, in), b (out) or undefined → (…, out).
Tensor cuda_linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace ssm
