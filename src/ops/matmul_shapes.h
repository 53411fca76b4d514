#pragma once
// Internal: shape helpers shared by the CPU and CUDA halves of matmul / linear (ops/linear.cpp,
// ops/cuda_linear.cpp).
#include <algorithm>

#include "ssm/core/tensor.h"

namespace ssm::matmul_shapes {

// The batch dims of a (…, rows, cols) operand.
inline Shape batch_of(const Tensor& t) {
  return Shape(t.shape().begin(), t.shape().end() - 2);
}

inline bool all_ones(const Shape& s) {
  return std::all_of(s.begin(), s.end(), [](int64_t v) { return v == 1; });
}

// Product of all dims but the last: the rows a tensor (…, n) has when flattened to 2-d
// (explicit, because reshape cannot infer -1 when n is 0).
inline int64_t leading_rows(const Shape& s) {
  int64_t r = 1;
  for (size_t i = 0; i + 1 < s.size(); ++i) r *= s[i];
  return r;
}

inline Shape with_matrix(Shape batch, int64_t rows, int64_t cols) {
  batch.push_back(rows);
  batch.push_back(cols);
  return batch;
}

// Drops leading size-1 batch dims of a detached view, keeping its strides (no copy).
inline Tensor as_matrix(Tensor t) {
  while (t.dim() > 2) t = t.select(0, 0);
  return t;
}

}  // namespace ssm::matmul_shapes
