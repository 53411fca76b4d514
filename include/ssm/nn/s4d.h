#pragma once
// S4D: a diagonal SSM per channel with N/2 complex modes (conjugate pairs, outputs 2·Re),
// run as a long convolution (parallel mode) or as a recurrence (step mode).
#include <string>

#include "ssm/core/rng.h"
#include "ssm/nn/module.h"
#include "ssm/ops/s4d_kernel.h"

namespace ssm::nn {

struct S4DOptions {
  int64_t d_model = 64;       // H channels
  int64_t d_state = 64;       // N (N/2 complex modes)
  std::string init = "legs";  // lin | inv | real | legs | legs-ptd
  // legs-ptd: ‖E‖₂ of the perturb-then-diagonalise init (hippo_ptd; E seeded from the layer's
  // generator). Larger: better-conditioned V, smaller B̃, but further from HiPPO-LegS.
  double ptd_norm = 0.1;
  double dt_min = 1e-3, dt_max = 1e-1;
  Discretization discretization = Discretization::ZOH;
  // Adds an anti-causal kernel with its own C: y = K_fwd * u + K_bwd ⋆ u (future inputs),
  // i.e. K_total = [K_fwd, 0] + [0, reversed K_bwd]. No recurrent mode then.
  bool bidirectional = false;
};

// The recurrent state of one S4D layer: complex x (B, H, N/2) as real and imaginary parts,
// and the discretised Ā, B̄·C products frozen from the parameters when the state was made.
struct S4DState {
  Tensor x_re, x_im;    // (B, H, N/2)
  Tensor a_re, a_im;    // Ā (H, N/2)
  Tensor bc_re, bc_im;  // C·B̄ (H, N/2): y = 2·Re Σ C x, with x scaled by B̄ folded in
};

class S4D : public Module {
 public:
  S4D(const S4DOptions& options, Generator& gen, DType dtype = DType::F32);
  // x (B, L, H) → y (B, L, H): y = K * u + D ⊙ u.
  Tensor forward(const Tensor& x) const;
  // The (forward) convolution kernel K (H, L) for the current parameters.
  Tensor kernel(int64_t L) const;
  Tensor backward_kernel(int64_t L) const;  // bidirectional only
  S4DState init_state(int64_t batch) const;
  // One step: x_t (B, H) → y_t (B, H); updates state. Not differentiable.
  Tensor step(const Tensor& x_t, S4DState& state) const;

  S4DOptions options;
  Tensor log_dt, A_re_log, A_im, B_re, B_im, C_re, C_im, D;
  Tensor C_re_bwd, C_im_bwd;  // bidirectional only
};

}  // namespace ssm::nn
