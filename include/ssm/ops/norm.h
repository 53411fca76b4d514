#pragma once
// Normalisation layers' functional forms (all normalise over the last dimension unless
// stated; statistics accumulate in the tensor's dtype with a float64 path for checking).
#include "ssm/core/tensor.h"

namespace ssm {

// (…, D); weight and bias (D) or undefined.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// x / sqrt(mean(x²) + eps) · weight; weight (D) or undefined.
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps = 1e-5);
// Mamba-2's gated norm: y = x ⊙ SiLU(z), then RMS-normalised within groups of
// `group_size` channels of the last dim (group_size = D for one group), times weight (D).
Tensor gated_rms_norm(const Tensor& x, const Tensor& z, const Tensor& weight, int64_t group_size,
                      double eps = 1e-5);
// x (B, L, D): statistics over (B, L) per channel. In training mode the batch statistics
// normalise and update running_mean / running_var (unbiased var) in place with `momentum`;
// in eval mode the running statistics normalise. weight, bias (D).
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                  Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);

}  // namespace ssm
