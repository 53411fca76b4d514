#pragma once
// Mamba-3's data-dependent rotary embedding: pure compute, no autograd. CPU implementations.
//
// Mamba-3 makes the state complex by rotating B and C (the paper's "RoPE trick"): a diagonal
// complex transition e^{(A + iθ)Δ} is the same as a real decay e^{AΔ} with B_t and C_t rotated
// by the cumulative angle φ_t = Σ_{s≤t} Δ_s θ_s. Per batch b, step t and head h, with S angle
// rates θ_t ∈ R^S and 2S ≤ N:
//   φ_t = φ_{t−1} + dt_t θ_t                     (φ_{−1} = initial angle or 0)
//   out[2i]   = x[2i] cos φ_t[i] − x[2i+1] sin φ_t[i]      i < S
//   out[2i+1] = x[2i] sin φ_t[i] + x[2i+1] cos φ_t[i]
//   out[n]    = x[n]                                       n ≥ 2S (not rotated)
// Adjacent entries form the pairs, as in the reference SISO kernel. The running angle is kept
// in [0, 2π) (φ − 2π⌊φ/2π⌋ after every step, as the reference does) so cos and sin stay
// accurate in float32 over long sequences; that changes no output and, almost everywhere,
// no gradient.
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm::kernels::cpu {

struct Mamba3RotaryInputs {
  Tensor x{};              // (B, L, H, N)
  Tensor dt{};             // (B, L, H)
  Tensor theta{};          // (B, L, H, S), 0 < 2S ≤ N
  Tensor initial_angle{};  // (B, H, S), or undefined (zeros)
};

struct Mamba3RotaryForward {
  Tensor out{};          // (B, L, H, N)
  Tensor final_angle{};  // (B, H, S), in [0, 2π)
};

struct Mamba3RotaryGrads {
  Tensor dx{}, ddt{}, dtheta{}, dinitial_angle{};  // dinitial_angle undefined when absent
};

// Throws ssm::Error naming `op` and the offending argument for any bad shape or dtype.
void check_mamba3_rotary_inputs(const Mamba3RotaryInputs& in, const char* op);

Mamba3RotaryForward mamba3_rotary_fwd(const Mamba3RotaryInputs& in);

// dout (B, L, H, N); dfinal_angle (B, H, S) or undefined (= zeros).
Mamba3RotaryGrads mamba3_rotary_bwd(const Mamba3RotaryInputs& in, const Tensor& dout,
                                    const Tensor& dfinal_angle);

}  // namespace ssm::kernels::cpu
