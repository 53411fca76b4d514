#pragma once
// Differentiable reductions (CPU; float32 / float64). `dims` may be negative (counted from
// the end) and in any order; naming a dim twice is an error. An empty `dims` reduces
// nothing (the result is a copy of x). Sums accumulate in double for both dtypes.
#include <vector>

#include "ssm/core/tensor.h"

namespace ssm {

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor sum_all(const Tensor& x);   // scalar (shape ())
Tensor mean_all(const Tensor& x);  // scalar (shape ())

// The adjoint of broadcasting `shape` up to x.shape(): sums x over its leading extra dims and
// over the dims where `shape` has size 1, giving a tensor of `shape` (x itself when the
// shapes are equal). Binary ops use it to reduce gradients of broadcast operands.
Tensor sum_to_shape(const Tensor& x, const Shape& shape);

}  // namespace ssm
