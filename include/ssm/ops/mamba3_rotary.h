#pragma once
// Mamba-3's data-dependent rotary embedding as a differentiable op (the math is in
// ssm/kernels/mamba3_rotary.h), and its single-step form.
//
//   auto [B_rot, angle] = mamba3_rotary(B, dt, theta);       // φ_t = Σ_{s≤t} dt_s θ_s
//   auto [C_rot, _]     = mamba3_rotary(C, dt, theta);
#include "ssm/core/tensor.h"

namespace ssm {

struct Mamba3RotaryResult {
  Tensor out{};    // x rotated pairwise by φ_t: (B, L, H, N), or (B, H, N) for a step
  Tensor angle{};  // φ after the last step, in [0, 2π): (B, H, S)
};

// x (B, L, H, N); dt (B, L, H); theta (B, L, H, S) with 0 < 2S ≤ N; initial_angle (B, H, S)
// or undefined (zeros). Pair i = (2i, 2i+1) of x is rotated by φ_t[i]; entries from 2S on
// pass through. Differentiable in x, dt, theta and initial_angle.
Mamba3RotaryResult mamba3_rotary(const Tensor& x, const Tensor& dt, const Tensor& theta,
                                 const Tensor& initial_angle = Tensor());

// One step: x_t (B, H, N), dt_t (B, H), theta_t (B, H, S) and the angle so far (B, H, S)
// (zeros before the first step) → x_t rotated by angle + dt_t θ_t, and that new angle.
// `angle` is not modified, so B_t and C_t can each be rotated from the same cache entry.
// Not differentiable (inference).
Mamba3RotaryResult mamba3_rotary_step(const Tensor& x_t, const Tensor& dt_t, const Tensor& theta_t,
                                      const Tensor& angle);

}  // namespace ssm
