#pragma once
// Internal: cross_entropy (ssm/ops/loss.h) on CUDA logits; ops/loss.cpp checks the arguments and
// hands CUDA logits here. Without the backend it throws ssm::Error.
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm {

// Targets may be on either device (CPU ids, as data loaders make them, are copied over). Same
// loss, gradient and errors as the CPU op; the loss stays on the GPU, and one small read-back
// per call carries the error checks (out-of-range target, non-finite row) and the count of
// counted rows the backward scales by.
Tensor cuda_cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                          double label_smoothing);

}  // namespace ssm
