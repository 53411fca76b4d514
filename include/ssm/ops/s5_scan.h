#pragma once
// The differentiable pieces of the S5 layer (DESIGN §5, S5): the ZOH discretisation of a
// diagonal complex system with a MIMO input matrix, and the linear recurrence over the sequence.
// Complex values are (re, im) pairs of real tensors.
#include <array>
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm {

// x_l = a ⊙ x_{l−1} + bu_l from x_{−1} = 0 (reverse: x_l = a ⊙ x_{l+1} + bu_l from x_L = 0).
// a_re, a_im (P); bu_re, bu_im (B, L, P); one float dtype, any strides. Returns (x_re, x_im),
// each (B, L, P). Differentiable in all four inputs (the backward is a reverse scan).
// chunk_len = 0 chooses the parallel chunking; a positive value forces it (for tests).
std::array<Tensor, 2> s5_scan(const Tensor& a_re, const Tensor& a_im, const Tensor& bu_re,
                              const Tensor& bu_im, bool reverse = false, int64_t chunk_len = 0);

// Zero-order hold for a diagonal Λ with one step Δ_p = exp(log_dt_p) per mode:
//   Λ̄_p = exp(Δ_p Λ_p),   B̄_{p,h} = (Λ̄_p − 1)/Λ_p · B_{p,h}.
// log_dt, Lambda_re, Lambda_im (P); B_re, B_im (P, H); one float dtype. Λ_p must not be 0 (a
// layer keeps Re Λ < 0). Returns {Λ̄_re, Λ̄_im (P), B̄_re, B̄_im (P, H)}; the per-mode arithmetic
// runs in float64 (expm1 without cancellation, a series for the derivative when |ΔΛ| is small).
// Differentiable in all five inputs.
std::array<Tensor, 4> s5_discretize_zoh(const Tensor& log_dt, const Tensor& Lambda_re,
                                        const Tensor& Lambda_im, const Tensor& B_re,
                                        const Tensor& B_im);

}  // namespace ssm
