#pragma once
#include "ssm/core/rng.h"
#include "ssm/core/tensor.h"

namespace ssm {

// Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1−p).
// The mask is drawn from `gen` in row-major element order (element i dropped when the i-th
// gen.uniform() < p), so a seed fixes it. Identity (x itself, no draws) when !training or
// p == 0; p outside [0, 1) is an error. Differentiable (the same mask in backward).
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

}  // namespace ssm
