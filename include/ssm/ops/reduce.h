#pragma once
// Differentiable reductions.
#include <vector>

#include "ssm/core/tensor.h"

namespace ssm {

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor sum_all(const Tensor& x);   // scalar (shape ())
Tensor mean_all(const Tensor& x);  // scalar (shape ())

}  // namespace ssm
