#pragma once
#include "ssm/core/tensor.h"

namespace ssm {

// ids (…) int32/int64 in [0, V), weight (V, D) → (…, D). Gradient flows to weight only.
Tensor embedding(const Tensor& ids, const Tensor& weight);

}  // namespace ssm
