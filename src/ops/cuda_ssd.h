#pragma once
// Internal: the CUDA half of ssd (arguments already validated by ops/ssd.cpp, all on the GPU;
// D and initial_state may be undefined). Without the backend it throws ssm::Error.
#include "ssm/ops/ssd.h"

namespace ssm {

SsdResult cuda_ssd(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B,
                   const Tensor& C, const SsdOptions& options);

}  // namespace ssm
