#pragma once
// Internal: the CUDA halves of causal_conv1d and causal_conv1d_update (arguments already
// validated by ops/conv.cpp, all on the GPU). Without the CUDA backend they throw ssm::Error.
#include "ssm/core/tensor.h"

namespace ssm {

Tensor cuda_causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias);
Tensor cuda_causal_conv1d_update(const Tensor& x_t, Tensor& conv_state, const Tensor& weight,
                                 const Tensor& bias);

}  // namespace ssm
