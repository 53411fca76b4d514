#pragma once
// The Mamba-3 (SISO) mixer, DESIGN §5, with the parameterisation of the reference
// mamba_ssm Mamba3 module (is_mimo = False, is_outproj_norm = False):
//   z, x, B, C, dd_dt, dd_A, trap, ang = split(in_proj(h))   sizes (D_inner, D_inner, G·N, G·N,
//                                                             H, H, H, S), no bias, no conv1d
//   B, C   = RMSNorm_N(B) + B_bias,  RMSNorm_N(C) + C_bias   per group norm weights (N); the
//                                                             biases (H, 1, N) make them per head
//   Δ      = softplus(dd_dt + dt_bias)                        (B, L, H)
//   A      = −max(softplus(dd_A), A_floor)                    data-dependent, (B, L, H)
//   λ      = σ(trap)                                          trapezoid weight, (B, L, H)
//   θ      = π·tanh(ang)                                      S rates shared by the heads
//   B, C   = rotary(B, C) by φ_t = Σ_{s≤t} Δ_s θ_s            per head (Δ is per head)
//   y      = mamba3_scan(x, Δ, A, λ, B, C, D) ⊙ SiLU(z)       h_t = α h + β B_{t−1}x_{t−1}ᵀ + γ B_t
//   x_tᵀ out    = out_proj(y)                                      no bias
// S = ⌊rope_fraction·N⌋ rounded down to even, halved: the first 2S state entries form the
// rotated pairs. Parameter names follow the reference: in_proj.weight, dt_bias, B_bias, C_bias,
// B_norm.weight, C_norm.weight, D, out_proj.weight.
//
// The recurrent state (MixerCache entries, named after the reference's inference cache):
//   "angle_state" (B, H, S)    φ after the last token
//   "ssm_state"   (B, H, P, N) h after the last token
//   "k_state"     (B, H, N)    the last token's rotated B (the trapezoid's β term reads it)
//   "v_state"     (B, H, P)    the last token's x
#include <cstdint>

#include "ssm/core/rng.h"
#include "ssm/nn/layers.h"
#include "ssm/nn/mixer.h"

namespace ssm::nn {

struct Mamba3Options {
  int64_t d_model = 64;
  int64_t d_state = 128;       // N
  int64_t expand = 2;          // D_inner = expand · d_model = H · P
  int64_t head_dim = 64;       // P
  int64_t n_groups = 1;        // G: B and C are projected (and normalised) per group
  double rope_fraction = 0.5;  // 0.5 or 1: the share of the N state entries that rotate
  double dt_min = 1e-3, dt_max = 1e-1, dt_init_floor = 1e-4;
  double A_floor = 1e-4;    // A ≤ −A_floor
  double norm_eps = 1e-5;   // of B_norm and C_norm
  int64_t chunk_size = 64;  // of the scan's backward
  int64_t d_inner() const { return expand * d_model; }
  int64_t n_heads() const { return d_inner() / head_dim; }
  // S, the number of rotary angles.
  int64_t n_angles() const;
  // Width of in_proj's output: z, x, B, C, dd_dt, dd_A, trap, angles.
  int64_t d_in_proj() const {
    return 2 * d_inner() + 2 * n_groups * d_state + 3 * n_heads() + n_angles();
  }
};

class Mamba3Mixer : public SequenceMixer {
 public:
  Mamba3Mixer(const Mamba3Options& options, Generator& gen, DType dtype = DType::F32);

  // x (B, L, d_model) → (B, L, d_model). Differentiable.
  Tensor forward(const Tensor& x) const override;
  // The same output, plus the cache after the last position (not differentiable).
  Tensor prefill(const Tensor& x, MixerCache& cache) const override;
  // A zero cache, as before the first token.
  MixerCache init_cache(int64_t batch) const override;
  // One token: x_t (B, d_model) → (B, d_model); advances `cache`. Not differentiable.
  Tensor step(const Tensor& x_t, MixerCache& cache) const override;

  int64_t d_model() const override { return options.d_model; }
  DType dtype() const override { return D.dtype(); }
  const char* arch() const override { return "mamba3"; }

  Mamba3Options options;
  std::shared_ptr<Linear> in_proj, out_proj;
  std::shared_ptr<RMSNorm> B_norm, C_norm;
  Tensor dt_bias;         // (H): softplus⁻¹ of Δ ~ logU[dt_min, dt_max]
  Tensor B_bias, C_bias;  // (H, 1, N), ones
  Tensor D;               // (H), ones

 private:
  struct Projected;  // the split, normalised and activated in_proj output
  Projected project(const Tensor& h, bool sequence) const;
  Tensor run(const Tensor& x, MixerCache* cache) const;
};

}  // namespace ssm::nn
