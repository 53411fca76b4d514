#pragma once
// Internal: the CUDA half of rms_norm / gated_rms_norm (arguments already validated by
// ops/norm.cpp, all on the GPU; z may be undefined). Without the backend it throws ssm::Error.
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm {

Tensor cuda_rms_norm(const char* op, const Tensor& x, const Tensor& z, const Tensor& weight,
                     int64_t group, double eps);

}  // namespace ssm
