#pragma once
// The S4D convolution kernel as a differentiable op (DESIGN §5, S4D).
//   Δ_h = exp(log_dt_h),  A_hn = −exp(A_re_log_hn) + i·A_im_hn,  B, C complex as (re, im)
//   K[h, l] = 2·Re Σ_n C_hn · B̄_hn · Ā_hn^l,  l = 0 .. L−1
// with ZOH (Ā = exp(ΔA), B̄ = B(exp(ΔA) − 1)/A) or bilinear (Ā = (1 + ΔA/2)/(1 − ΔA/2),
// B̄ = ΔB/(1 − ΔA/2)) discretisation. Time O(H·N·L), memory O(H·(N + L)).
#include <cstdint>

#include "ssm/core/tensor.h"
#include "ssm/kernels/s4d_kernel.h"  // Discretization

namespace ssm {

// log_dt (H); A_re_log, A_im, B_re, B_im, C_re, C_im (H, N/2); all one float dtype, any
// strides. Returns K (H, L). Differentiable in all seven inputs.
Tensor s4d_kernel(const Tensor& log_dt, const Tensor& A_re_log, const Tensor& A_im,
                  const Tensor& B_re, const Tensor& B_im, const Tensor& C_re, const Tensor& C_im,
                  int64_t L, Discretization discretization = Discretization::ZOH);

}  // namespace ssm
