#pragma once
// The Mamba-2 mixer (SSD), DESIGN §5, with Hugging Face's Mamba2Mixer parameterisation:
//   z, xBC, Δ_raw = split(in_proj(h))             sizes (D_inner, D_inner + 2·G·N, H), no bias
//   xBC  = SiLU(causal depthwise conv1d(xBC))     width d_conv, with bias
//   x, B, C = split(xBC)                          x (H heads of P), B and C (G groups of N)
//   Δ    = softplus(Δ_raw + dt_bias)              per head, clamped to [dt_limit_min, dt_limit_max]
//   y    = SSD(x, Δ, A = −exp(A_log), B, C, D)    the op multiplies x by Δ itself
//   y    = RMSNorm(y ⊙ SiLU(z)) within each of the G groups of D_inner / G channels, · norm.weight
//   out  = out_proj(y)                            no bias
// Parameter names: in_proj.weight, conv1d.weight (C, 1, k), conv1d.bias, dt_bias, A_log, D,
// norm.weight, out_proj.weight.
#include <cstdint>
#include <limits>

#include "ssm/core/rng.h"
#include "ssm/nn/layers.h"
#include "ssm/nn/mamba.h"
#include "ssm/nn/mixer.h"

namespace ssm::nn {

struct Mamba2Options {
  int64_t d_model = 64;
  int64_t d_state = 128;  // N
  int64_t d_conv = 4;
  int64_t expand = 2;     // D_inner = expand · d_model = H · P
  int64_t head_dim = 64;  // P
  int64_t n_groups = 1;   // G (B and C shared by H / G heads)
  int64_t chunk_size = 256;
  double dt_min = 1e-3, dt_max = 1e-1, dt_init_floor = 1e-4;
  // Δ is clamped to this range (HF time_step_limit, mamba_ssm dt_limit); the default clamps
  // nothing.
  double dt_limit_min = 0, dt_limit_max = std::numeric_limits<double>::infinity();
  double A_init_min = 1, A_init_max = 16;  // A = −U[min, max] per head
  double norm_eps = 1e-5;
  int64_t d_inner() const { return expand * d_model; }
  int64_t n_heads() const { return d_inner() / head_dim; }
  int64_t conv_dim() const { return d_inner() + 2 * n_groups * d_state; }
};

// y = RMSNorm(x ⊙ SiLU(z)) over groups of `group_size` channels, times weight (D).
class GatedRMSNorm : public Module {
 public:
  GatedRMSNorm(int64_t dim, int64_t group_size, double eps, DType dtype);
  Tensor forward(const Tensor& x, const Tensor& z) const;
  Tensor weight;
  int64_t group_size;
  double eps;
};

// The recurrent state: "conv_state" (B, conv_dim, d_conv − 1), the last d_conv − 1 inputs of
// the conv (oldest first), and "ssm_state" (B, H, P, N).
class Mamba2Mixer : public SequenceMixer {
 public:
  Mamba2Mixer(const Mamba2Options& options, Generator& gen, DType dtype = DType::F32);

  Tensor forward(const Tensor& x) const override;
  Tensor prefill(const Tensor& x, MixerCache& cache) const override;
  MixerCache init_cache(int64_t batch) const override;
  Tensor step(const Tensor& x_t, MixerCache& cache) const override;

  int64_t d_model() const override { return options.d_model; }
  DType dtype() const override { return A_log.dtype(); }
  const char* arch() const override { return "mamba2"; }

  Mamba2Options options;
  std::shared_ptr<Linear> in_proj, out_proj;
  std::shared_ptr<DepthwiseConv1d> conv1d;
  std::shared_ptr<GatedRMSNorm> norm;
  Tensor dt_bias;  // (H)
  Tensor A_log;    // (H)
  Tensor D;        // (H)

 private:
  Tensor run(const Tensor& x, MixerCache* cache) const;
  Tensor delta(const Tensor& dt_raw) const;  // softplus(dt_raw + dt_bias), clamped
};

}  // namespace ssm::nn
