#pragma once
// S4: a DPLR SSM per channel (DESIGN §5, S4), run as a long convolution (parallel mode) or as
// a dense recurrence (step mode). Per channel h, N/2 complex modes (conjugates implied):
//   A = diag(Λ) − Σ_r P_r P_r*,  Re Λ = −exp(Lambda_re_log),  Δ = exp(log_dt),  bilinear
//   Ā = (I − ΔA/2)⁻¹(I + ΔA/2),  B̄ = (I − ΔA/2)⁻¹ΔB,   y = K * u + D ⊙ u,  K_l = C Ā^l B̄.
// The trainable readout is C̃ = C(I − Ā^{l_max}) (ops/s4_kernel.h): the kernel is computed at
// length l_max from C̃ directly (Cauchy sums + Woodbury + irfft), and cut to the sequence length
// L ≤ l_max, which is exact. Longer sequences need C̃ for a new length (change_kernel_length, or
// a converted copy inside kernel() when no gradient is being recorded).
#include <string>

#include "ssm/core/rng.h"
#include "ssm/nn/module.h"

namespace ssm::nn {

struct S4Options {
  int64_t d_model = 64;  // H channels
  int64_t d_state = 64;  // N (N/2 complex modes), even
  int64_t l_max = 1024;  // the kernel length C̃ refers to (the longest training sequence)
  // "legs": HiPPO-LegS, rank 1 (the S4 default); "legt": HiPPO-LegT, rank 2. Λ, P, B come from
  // hippo_dplr, the same for every channel. LegT's Λ is purely imaginary; Re Λ starts at
  // −1e-4 instead (the parameterisation needs Re Λ < 0; the low-rank term makes A dissipative).
  std::string init = "legs";
  double dt_min = 1e-3, dt_max = 1e-1;  // log Δ_h ~ U[log dt_min, log dt_max]
  // Adds an anti-causal kernel with its own C̃: y = K_fwd * u + K_bwd ⋆ u (strictly future
  // inputs), i.e. K_total = [K_fwd, 0] + [0, reversed K_bwd]. No recurrent mode then.
  bool bidirectional = false;
};

// The recurrent state of one S4 layer in real coordinates: the complex state x (N/2 modes, its
// conjugate half implied) is carried as s = [Re x; Im x] (B, H, N), and the discretised system,
// frozen from the parameters in float64 when the state was made, as real matrices:
//   s ← M s + b·u,   y = c·s + D ⊙ u   (M (H, N, N), b (H, N), c (H, N) = [2·Re C; −2·Im C]).
struct S4State {
  Tensor s;    // (B, H, N)
  Tensor M_t;  // (H, N, N): M transposed, M_t[h, j, i] = M_ij (s'_i = Σ_j M_ij s_j)
  Tensor b;    // (H, N)
  Tensor c;    // (H, N)
  Tensor d;    // (H)
};

class S4 : public Module {
 public:
  S4(const S4Options& options, Generator& gen, DType dtype = DType::F32);
  // x (B, L, H) → y (B, L, H): y = K * u + D ⊙ u. Differentiable in x and every parameter
  // when L ≤ l_max.
  Tensor forward(const Tensor& x) const;
  // The (forward) convolution kernel K (H, L) for the current parameters. L ≤ l_max: the
  // l_max kernel cut to L (differentiable). L > l_max: from C̃ converted to length L (float64,
  // not differentiable: refused while gradients are being recorded).
  Tensor kernel(int64_t L) const;
  Tensor backward_kernel(int64_t L) const;  // bidirectional only
  // Re-expresses C̃ (and C̃_bwd) for kernel length L and sets options.l_max = L. The layer's
  // function does not change; afterwards C̃ is trained for (and gradients flow at) length L.
  // Not differentiable; optimizer moments of C̃ keep their values.
  void change_kernel_length(int64_t L);
  S4State init_state(int64_t batch) const;
  // One step: x_t (B, H) → y_t (B, H); updates state. Not differentiable. O(H·N²) per step.
  Tensor step(const Tensor& x_t, S4State& state) const;

  int64_t rank() const { return P_re.size(0); }
  Tensor Lambda_re() const;  // −exp(Lambda_re_log), differentiable

  S4Options options;
  Tensor log_dt;                    // (H)
  Tensor Lambda_re_log, Lambda_im;  // (H, N/2)
  Tensor P_re, P_im;                // (R, H, N/2)
  Tensor B_re, B_im;                // (H, N/2)
  Tensor C_re, C_im;                // C̃ (H, N/2) for kernel length options.l_max
  Tensor D;                         // (H)
  Tensor C_re_bwd, C_im_bwd;        // bidirectional only
};

}  // namespace ssm::nn
