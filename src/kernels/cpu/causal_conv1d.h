#pragma once
// Depthwise causal 1-d convolution (Mamba's short conv) and its single-step decode update.
// Pure kernels: contiguous row-major buffers, no autograd. T = float or double.
//   y[b,d,l] = bias[d] + Σ_{j<K} w[d,j] · x[b,d,l−(K−1)+j]   (x is zero before l = 0)
#include <cstdint>

namespace ssm::kernels::cpu {

// x, y (B, D, L); w (D, K); bias (D) or null.
template <typename T>
void causal_conv1d_fwd(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t D, int64_t L,
                       int64_t K);

// Given dy (B, D, L): dx (B, D, L), dw (D, K), dbias (D); each may be null when not wanted.
//   dx[b,d,m]  = Σ_j w[d,j] · dy[b,d,m+(K−1)−j]   (terms past L−1 are zero)
//   dw[d,j]    = Σ_b Σ_l dy[b,d,l] · x[b,d,l−(K−1)+j]
//   dbias[d]   = Σ_b Σ_l dy[b,d,l]
template <typename T>
void causal_conv1d_bwd(const T* dy, const T* x, const T* w, T* dx, T* dw, T* dbias, int64_t B,
                       int64_t D, int64_t L, int64_t K);

// One decode step. state (B, D, K−1) holds the previous K−1 inputs, oldest first; it is
// shifted by one and x_t appended. x_t, y_t (B, D); bias (D) or null.
template <typename T>
void causal_conv1d_update(const T* x_t, T* state, const T* w, const T* bias, T* y_t, int64_t B,
                          int64_t D, int64_t K);

}  // namespace ssm::kernels::cpu
