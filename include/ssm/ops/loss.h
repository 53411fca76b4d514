#pragma once
// Differentiable losses; each returns a scalar (shape ()) mean over the counted elements.
#include "ssm/core/tensor.h"

namespace ssm {

Tensor mse_loss(const Tensor& prediction, const Tensor& target);
// logits (N, C) float, targets (N) int32/int64 class ids. Targets equal to ignore_index
// are left out of the mean. label_smoothing ε mixes the one-hot target with uniform 1/C.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100,
                     double label_smoothing = 0.0);

}  // namespace ssm
