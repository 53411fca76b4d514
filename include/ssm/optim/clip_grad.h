#pragma once
// Gradient-norm clipping over a set of parameters.
#include <vector>

#include "ssm/core/tensor.h"

namespace ssm::optim {

// The L2 norm of all gradients together (parameters without a gradient are skipped). When it
// exceeds max_norm every gradient is scaled by max_norm / (norm + 1e-6). Returns the norm
// before clipping. A non-finite norm leaves the gradients untouched and is returned as is,
// so the caller can skip the update.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// The same L2 norm without changing anything.
double grad_norm(const std::vector<Tensor>& params);

}  // namespace ssm::optim
