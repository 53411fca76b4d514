#pragma once
// Matrix products through OpenBLAS (sgemm / dgemm).
#include "ssm/core/tensor.h"

namespace ssm {

// (…, M, K) @ (…, K, N) → (…, M, N); batch dims broadcast; 2-d @ 2-d is a plain GEMM.
// Transposed views (e.g. x.transpose(-1, -2)) go to BLAS as a transpose flag, not a copy.
// When b has no batch (or all-1 batch dims) and a is contiguous, the batch folds into one
// tall GEMM; otherwise it is a loop of GEMMs over the broadcast batch.
Tensor matmul(const Tensor& a, const Tensor& b);
// x (…, in) · Wᵀ + b with W (out, in) (PyTorch layout), b (out) or undefined → (…, out).
// The leading dims fold into one GEMM; backward: dX = dY·W, dW = dYᵀ·X, db = Σ dY.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace ssm
