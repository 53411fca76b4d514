#pragma once
// Convolutions along the sequence. Channel-first layout (B, D, L) as the SSM kernels use.
#include "ssm/core/tensor.h"

namespace ssm {

// Depthwise causal conv: y[b,d,l] = bias[d] + Σ_{j<k} w[d,j] · x[b,d,l−(k−1)+j] (zeros before 0).
// x (B, D, L), weight (D, k), bias (D) or undefined. Differentiable in x, weight, bias.
Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// One decode step: conv_state (B, D, k−1) holds the previous k−1 inputs (oldest first) and is
// shifted in place to include x_t (B, D). Returns y_t (B, D). Not differentiable.
Tensor causal_conv1d_update(const Tensor& x_t, Tensor& conv_state, const Tensor& weight,
                            const Tensor& bias = Tensor());

// Causal long convolution via FFT with an optional skip (feed-through) term:
//   y[b,h,l] = Σ_{j≤l} k[h,j] · u[b,h,l−j] + skip[h] · u[b,h,l],
// computed as irfft(rfft(u, 2L) · rfft(k, 2L))[:L] + skip·u. u (B, H, L), k (H, L),
// skip (H) or undefined (no skip term). The skip term is fused into the convolution's row
// loop (the S4/S4D "D" term) rather than done as separate mul and add ops.
// Differentiable in u, k and skip.
Tensor fft_conv(const Tensor& u, const Tensor& k, const Tensor& skip = Tensor());

}  // namespace ssm
