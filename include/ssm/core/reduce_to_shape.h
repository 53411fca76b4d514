#pragma once
#include "ssm/core/tensor.h"

namespace ssm {

// Sums a broadcast gradient back to `shape` (the shape before broadcasting): leading
// extra dims are summed away and dims of size 1 in `shape` are summed with keepdim.
// Not tracked by autograd; returns a contiguous tensor.
Tensor reduce_to_shape(const Tensor& grad, const Shape& shape);

// out += src elementwise (same shape and dtype, out contiguous). Not tracked.
void add_into(Tensor& out, const Tensor& src);

}  // namespace ssm
