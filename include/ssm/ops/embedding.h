#pragma once
#include "ssm/core/tensor.h"

namespace ssm {

// ids (…) int32/int64 in [0, V), weight (V, D) → (…, D). Gradient flows to weight only
// (scatter-add: repeated ids accumulate). An id outside [0, V) is an error naming it.
Tensor embedding(const Tensor& ids, const Tensor& weight);

}  // namespace ssm
