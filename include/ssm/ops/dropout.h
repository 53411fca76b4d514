#pragma once
#include "ssm/core/rng.h"
#include "ssm/core/tensor.h"

namespace ssm {

// Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1−p).
// Identity when !training or p == 0. Differentiable (the same mask in backward).
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

}  // namespace ssm
