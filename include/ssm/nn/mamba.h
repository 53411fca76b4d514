#pragma once
// The Mamba-1 mixer (selective SSM, "S6"), DESIGN §5:
//   x, z = split(in_proj(h))                      (B, L, 2·D_inner), no bias
//   x    = SiLU(causal depthwise conv1d(x))       width d_conv, with bias
//   Δ, B, C = split(x_proj(x))                    (R, N, N), no bias
//   Δ    = softplus(dt_proj(Δ) + b_dt)            the bias is folded into the scan
//   y    = selective_scan(x, Δ, A = −exp(A_log), B, C, D) ⊙ SiLU(z)
//   out  = out_proj(y)                            no bias
// Parameter names and shapes are those of Hugging Face's MambaMixer (conv1d.weight is
// (D_inner, 1, d_conv)), so a checkpoint's tensors load by name.
#include <cstdint>

#include "ssm/core/rng.h"
#include "ssm/nn/layers.h"
#include "ssm/nn/mixer.h"

namespace ssm::nn {

struct MambaOptions {
  int64_t d_model = 64;
  int64_t d_state = 16;  // N
  int64_t d_conv = 4;
  int64_t expand = 2;   // D_inner = expand · d_model
  int64_t dt_rank = 0;  // R; 0 = ceil(d_model / 16)
  double dt_min = 1e-3, dt_max = 1e-1, dt_init_floor = 1e-4;
  int64_t d_inner() const { return expand * d_model; }
  int64_t resolved_dt_rank() const { return dt_rank > 0 ? dt_rank : (d_model + 15) / 16; }
};

// The recurrent state of one Mamba-1 mixer: "conv_state" (B, D_inner, d_conv − 1), the last
// d_conv − 1 conv inputs (oldest first), and "ssm_state" (B, D_inner, N). Both contiguous,
// updated in place by step().
using MambaCache = MixerCache;

// A (D, k) depthwise conv stored as PyTorch's Conv1d(groups=D) does: weight (D, 1, k), bias (D).
class DepthwiseConv1d : public Module {
 public:
  DepthwiseConv1d(int64_t channels, int64_t width, Generator& gen, DType dtype);
  Tensor weight, bias;
};

// dt_proj: Linear(R → D_inner) whose bias is an SSM parameter (own lr, no weight decay).
// weight ~ U(±R^−½); bias = softplus⁻¹(dt) with dt ~ logU[dt_min, dt_max] (floored).
class DtProjection : public Module {
 public:
  DtProjection(const MambaOptions& o, Generator& gen, DType dtype);
  Tensor weight, bias;  // (D_inner, R), (D_inner)
};

class MambaMixer : public SequenceMixer {
 public:
  MambaMixer(const MambaOptions& options, Generator& gen, DType dtype = DType::F32);

  // x (B, L, d_model) → (B, L, d_model). Differentiable.
  Tensor forward(const Tensor& x) const override;
  // The same output, plus the cache after the last position (not differentiable).
  Tensor prefill(const Tensor& x, MambaCache& cache) const override;
  // A zero cache, as before the first token.
  MambaCache init_cache(int64_t batch) const override;
  // One token: x_t (B, d_model) → (B, d_model); advances `cache`. Not differentiable.
  Tensor step(const Tensor& x_t, MambaCache& cache) const override;

  int64_t d_model() const override { return options.d_model; }
  DType dtype() const override { return A_log.dtype(); }
  const char* arch() const override { return "mamba1"; }

  MambaOptions options;
  std::shared_ptr<Linear> in_proj, x_proj, out_proj;
  std::shared_ptr<DtProjection> dt_proj;
  std::shared_ptr<DepthwiseConv1d> conv1d;
  Tensor A_log;  // (D_inner, N)
  Tensor D;      // (D_inner)

 private:
  Tensor run(const Tensor& x, MambaCache* cache) const;
};

}  // namespace ssm::nn
