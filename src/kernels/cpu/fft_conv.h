#pragma once
// Causal long convolution through real FFTs of length 2L (zero padding makes the circular
// product a linear one), and its gradients as frequency-domain correlations.
// Pure kernels: contiguous row-major buffers, no autograd. T = float or double.
#include <cstdint>

namespace ssm::kernels::cpu {

// y[b,h,l] = Σ_{j≤l} k[h,j] · u[b,h,l−j].  u, y (B, H, L); k (H, L).
template <typename T>
void fft_conv_fwd(const T* u, const T* k, T* y, int64_t B, int64_t H, int64_t L);

// Given dy = ∂loss/∂y:
//   du[b,h,m] = Σ_{l≥m} dy[b,h,l] · k[h,l−m]            (anti-causal correlation with k)
//   dk[h,j]   = Σ_b Σ_{l≥j} dy[b,h,l] · u[b,h,l−j]       (correlation with u, summed over b)
// du or dk may be null when that gradient is not wanted.
template <typename T>
void fft_conv_bwd(const T* dy, const T* u, const T* k, T* du, T* dk, int64_t B, int64_t H,
                  int64_t L);

}  // namespace ssm::kernels::cpu
