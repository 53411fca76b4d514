#pragma once
// Internal: the CUDA half of ssd_state_update (the Mamba-2 decode step); inputs on the GPU.
// Without the backend it throws ssm::Error.
#include "ssm/core/tensor.h"
#include "ssm/kernels/ssd.h"

namespace ssm {

Tensor cuda_ssd_state_update(Tensor& state, const kernels::cpu::SsdStepInputs& in);

}  // namespace ssm
