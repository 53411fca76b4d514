#pragma once
// The S4 (DPLR) convolution kernel as a differentiable op (DESIGN §5, S4).
//
// Per channel h, with N/2 kept complex modes (their conjugates implied) and rank R ∈ {1, 2}:
//   A = diag(Λ) − Σ_r P_r P_r*   (Q = P),   Δ = exp(log_dt),   bilinear discretisation
//   Ā = (I − ΔA/2)⁻¹(I + ΔA/2),  B̄ = (I − ΔA/2)⁻¹ΔB,  K_l = Re(C Ā^l B̄) over the full basis.
// It is computed from the generating function at the L-th roots of unity ω_k = e^{−2πik/L}:
//   z_k = 2(1 − ω_k)/((1 + ω_k)Δ),
//   K̂_k = 2/(1 + ω_k) · [r_{C̃B} − r_{C̃P}(I + r_{P*P})⁻¹ r_{P*B}](z_k),   K = irfft(K̂, L),
// with Cauchy sums r_{xy}(z) = Σ_n x_n y_n/(z − Λ_n) + conjugate pairs. The parameter C̃ stands
// for C(I − Ā^L): the result is the first L taps of the impulse response of (Ā, B̄, C) exactly
// when C̃ was formed for this L (s4_c_tilde_from_c). Time O(H·R²·N·L); memory O(H·R²·(N + L)).
#include <cstdint>
#include <utility>

#include "ssm/core/tensor.h"

namespace ssm {

// log_dt (H); Lambda_re, Lambda_im, B_re, B_im, C_re, C_im (H, N/2); P_re, P_im (R, H, N/2)
// with R = 1 or 2; one float dtype, any strides. Returns K (H, L) for any L ≥ 1.
// Differentiable in all nine inputs. Λ is taken as given (a layer keeps Re Λ < 0 itself).
Tensor s4_kernel(const Tensor& log_dt, const Tensor& Lambda_re, const Tensor& Lambda_im,
                 const Tensor& P_re, const Tensor& P_im, const Tensor& B_re, const Tensor& B_im,
                 const Tensor& C_re, const Tensor& C_im, int64_t L);

// C̃ = C(I − Ā^L) from C, and back, for the same system (not differentiable; float64 inside,
// dense N×N per channel, O(H·N³·log L)). Use them at initialisation (C̃ from a sampled C) and
// to move a trained C̃ from one kernel length to another:
//   C = s4_c_from_c_tilde(…, C̃, L_train);  C̃' = s4_c_tilde_from_c(…, C, L_new).
// C_re, C_im are C for s4_c_tilde_from_c and C̃ for s4_c_from_c_tilde.
// Returns (re, im) of shape (H, N/2) in the inputs' dtype.
std::pair<Tensor, Tensor> s4_c_tilde_from_c(const Tensor& log_dt, const Tensor& Lambda_re,
                                            const Tensor& Lambda_im, const Tensor& P_re,
                                            const Tensor& P_im, const Tensor& C_re,
                                            const Tensor& C_im, int64_t L);
std::pair<Tensor, Tensor> s4_c_from_c_tilde(const Tensor& log_dt, const Tensor& Lambda_re,
                                            const Tensor& Lambda_im, const Tensor& P_re,
                                            const Tensor& P_im, const Tensor& C_re,
                                            const Tensor& C_im, int64_t L);

}  // namespace ssm
