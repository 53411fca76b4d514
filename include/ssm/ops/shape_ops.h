#pragma once
// Differentiable joins and splits.
#include <vector>

#include "ssm/core/tensor.h"

namespace ssm {

// Joins tensors of one dtype (any dtype) whose shapes agree except in `dim` (may be negative).
// The result is a fresh contiguous tensor; the gradient of each input is its narrow.
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
// Views of x along `dim` with the given sizes (which must add up to x.size(dim)).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
// GLU: a ⊙ σ(b) where a, b are the two halves of x along `dim` (even size).
Tensor glu(const Tensor& x, int64_t dim = -1);

}  // namespace ssm
