#pragma once
// S5: one multi-input multi-output diagonal SSM per layer (DESIGN §5, S5). P complex modes
// (their conjugates implied: outputs use 2·Re), shared by all H channels:
//   Λ_p = −exp(Lambda_re_log_p) + i·Lambda_im_p,  Δ_p = exp(log_dt_p),  ZOH:
//   Λ̄ = exp(ΔΛ),  B̄ = diag((Λ̄ − 1)/Λ)·B̃   (B̃ (P, H) complex)
//   x_k = Λ̄ ⊙ x_{k−1} + B̄ u_k,   y_k = 2·Re(C̃ x_k) + D ⊙ u_k   (C̃ (H, P) complex, D (H))
// Parallel mode: B̄u for all k is one GEMM, the recurrence a chunked parallel scan
// (ops/s5_scan.h), the readout one more GEMM. Step mode: the same recurrence one k at a time.
#include <array>
#include <string>

#include "ssm/core/rng.h"
#include "ssm/nn/module.h"

namespace ssm::nn {

struct S5Options {
  int64_t d_model = 64;  // H channels (inputs and outputs)
  int64_t d_state = 64;  // P complex modes kept (a real state of size 2P)
  // Λ is block-diagonal HiPPO-LegS: each block is the DPLR eigenvalues Λ of hippo_dplr(LegS,
  // block_size) (the normal "HiPPO-N" part), i.e. block_size/2 modes, repeated
  // d_state/(block_size/2) times; B̃ = V*B, C̃ = C·V use the block's eigenvectors V.
  // block_size is even and block_size/2 divides d_state.
  int64_t block_size = 16;
  // "legs": the blocks as above. "legs-ptd": each block is the perturb-then-diagonalise form
  // of the full HiPPO-LegS (hippo_ptd(block_size, ptd_norm), E seeded from the generator):
  // Λ = its eigenvalues, B̃ = W_h B, C̃ = C·V_h with the non-unitary eigenvectors.
  std::string init = "legs";
  double ptd_norm = 0.1;
  double dt_min = 1e-3, dt_max = 1e-1;  // log Δ_p ~ U[log dt_min, log dt_max]
  // Adds a second scan over the reversed sequence, x̃_k = Λ̄ ⊙ x̃_{k+1} + B̄ u_k (same Λ, B̃, Δ),
  // read out by its own C̃_bwd: y_k = 2·Re(C̃ x_k + C̃_bwd x̃_k) + D ⊙ u_k. This is the S5 paper's
  // concatenated state [x; x̃] with one readout (H, 2P); the two readouts are simply summed.
  // A bidirectional layer reads future inputs and has no step mode.
  bool bidirectional = false;
};

// The recurrent state of one S5 layer: x (B, P) complex, and the discretised system frozen
// from the parameters (in float64) when the state was made.
struct S5State {
  Tensor x_re, x_im;  // (B, P)
  Tensor a_re, a_im;  // Λ̄ (P)
  Tensor b_re, b_im;  // B̄ (P, H)
  Tensor c_re, c_im;  // C̃ (H, P)
  Tensor d;           // D (H)
};

class S5 : public Module {
 public:
  S5(const S5Options& options, Generator& gen, DType dtype = DType::F32);
  // x (B, L, H) → y (B, L, H). Differentiable in x and every parameter.
  Tensor forward(const Tensor& x) const;
  // Λ̄ (re, im) (P) and B̄ (re, im) (P, H) for the current parameters (differentiable).
  std::array<Tensor, 4> discretize() const;
  S5State init_state(int64_t batch) const;
  // One step: x_t (B, H) → y_t (B, H); updates state. Not differentiable.
  Tensor step(const Tensor& x_t, S5State& state) const;

  S5Options options;
  Tensor log_dt, Lambda_re_log, Lambda_im;  // (P)
  Tensor B_re, B_im;                        // (P, H)
  Tensor C_re, C_im;                        // (H, P)
  Tensor D;                                 // (H)
  Tensor C_re_bwd, C_im_bwd;                // (H, P), bidirectional only
};

}  // namespace ssm::nn
