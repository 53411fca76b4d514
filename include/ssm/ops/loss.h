#pragma once
// Differentiable losses; each returns a scalar (shape ()) mean over the counted elements.
#include "ssm/core/tensor.h"

namespace ssm {

// mean((prediction − target)²); same shape and dtype; gradients to both.
Tensor mse_loss(const Tensor& prediction, const Tensor& target);
// logits (N, C) float, targets (N) int32/int64 class ids (more generally logits (…, C) with
// targets (…): classes last). Fused log-softmax; per row
//   loss = (1 − ε) · (−log p_target) + ε · mean over classes of (−log p_c),
// i.e. label_smoothing ε mixes the one-hot target with uniform 1/C. Targets equal to
// ignore_index are left out of the mean; if every target is ignored the loss is 0 with zero
// gradients (PyTorch gives NaN). Errors: a target outside [0, C) (naming value and index),
// a counted row whose logits hold NaN or +Inf (or are all −Inf).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100,
                     double label_smoothing = 0.0);

}  // namespace ssm
