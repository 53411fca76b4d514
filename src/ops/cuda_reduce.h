#pragma once
// Internal: the CUDA half of sum / mean (ops/reduce.cpp brings every reduction to the (A, K, N)
// form and calls this for CUDA tensors): out[a, n] = scale · Σ_k x[a, k, n], x contiguous on the
// GPU, out a contiguous CUDA tensor of A · N elements. Without the backend it throws ssm::Error.
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm {

void cuda_sum_akn(const char* op, const Tensor& x, Tensor& out, int64_t A, int64_t K, int64_t N,
                  double scale);

}  // namespace ssm
