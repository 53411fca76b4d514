#pragma once
// Matrix products through OpenBLAS (sgemm / dgemm).
#include "ssm/core/tensor.h"

namespace ssm {

// (…, M, K) @ (…, K, N) → (…, M, N); batch dims broadcast; 2-d @ 2-d is a plain GEMM.
Tensor matmul(const Tensor& a, const Tensor& b);
// x (…, in) · Wᵀ + b with W (out, in) (PyTorch layout), b (out) or undefined → (…, out).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace ssm
