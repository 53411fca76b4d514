#pragma once
// Normalisation layers' functional forms (all normalise over the last dimension unless
// stated). Statistics accumulate in float64 for float32 inputs too, and x − mean is formed
// in float64, so float32 results match float64 ones to about 1e-6 even with large offsets.
// Gradients flow to x (and z) and to every defined weight / bias that requires grad.
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
// x (B, L, D) (or any (…, D)): statistics over all leading dims per channel. In training
// mode the batch statistics (biased variance) normalise and update running_mean /
// running_var in place: r ← (1 − momentum)·r + momentum·stat, with the unbiased variance.
// Running statistics may be undefined in training (nothing is tracked) and are required in
// eval mode, where they normalise. weight, bias (D) or undefined; running stats (D) in x's
// dtype. Training needs more than one value per channel.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                  Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

// Along `dim` (negative counts from the end), max-subtracted.
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);

}  // namespace ssm
