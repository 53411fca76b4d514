#pragma once
// S4D convolution kernel, a fused Vandermonde product: pure compute, no autograd. CPU.
//
// Per channel h and mode n (N/2 complex modes; the conjugate half is implied by 2·Re):
//   Δ = exp(log_dt_h),  A = −exp(A_re_log_hn) + i·A_im_hn,  B = B_re + i·B_im,  C = C_re + i·C_im
//   ZOH:      z = exp(ΔA),                  W = C·B·(exp(ΔA) − 1)/A
//   bilinear: z = (1 + ΔA/2)/(1 − ΔA/2),   W = C·B·Δ/(1 − ΔA/2)
//   K[h, l] = 2·Re Σ_n W_hn · z_hn^l,   l = 0 .. L−1
// Time O(H·N·L); memory O(H·(N + L)): the (H, N, L) Vandermonde matrix is never formed.
// z^l is produced blockwise from a small table of z^j (j < block) times a running seed z^l₀
// that is advanced by multiplication and re-seeded exactly from exp(l₀·log z) at intervals,
// so rounding does not grow with l. Per-mode set-up and the chain rule run in float64.
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm {

// How a continuous-time SSM is turned into a recurrence (DESIGN §5).
enum class Discretization { ZOH, Bilinear };
const char* discretization_name(Discretization d);  // "zoh", "bilinear"

}  // namespace ssm

namespace ssm::kernels::cpu {

// All contiguous, one float dtype: log_dt (H); the others (H, N/2).
struct S4DKernelTensors {
  Tensor log_dt, A_re_log, A_im, B_re, B_im, C_re, C_im;
};

// Throws ssm::Error naming `op` and the argument for a wrong rank, shape, dtype or L ≤ 0.
void check_s4d_kernel_inputs(const S4DKernelTensors& in, int64_t L, const char* op);

// K (H, L) in the inputs' dtype.
Tensor s4d_kernel_fwd(const S4DKernelTensors& in, int64_t L, Discretization d);

// Gradients of Σ grad_K ⊙ K with respect to every input; grad_K (H, L) contiguous.
S4DKernelTensors s4d_kernel_bwd(const S4DKernelTensors& in, const Tensor& grad_K, Discretization d);

}  // namespace ssm::kernels::cpu
