#pragma once
// Cauchy sums, the core of the S4 (DPLR) kernel: pure compute, no autograd. CPU.
//
//   r[h, m, k] = Σ_n v[h, m, n] / (z[h, k] − λ[h, n])
//              + Σ_n conj(v[h, m, n]) / (z[h, k] − conj(λ[h, n]))   (when conjugate_pairs)
//
// Complex values travel as (re, im) pairs of real tensors. The second sum adds the implied
// conjugate half of a conjugate-pair state (DESIGN §5): N kept modes stand for 2N.
// Time O(H·K·N·M); memory O(H·M·(N + K)) — the (K, N) Cauchy matrix is never stored.
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm::kernels::cpu {

struct CauchyInputs {
  Tensor v_re, v_im;            // (H, M, N)
  Tensor lambda_re, lambda_im;  // (H, N)
  Tensor z_re, z_im;            // (H, K)
  bool conjugate_pairs = true;
};

struct CauchyOutput {
  Tensor re, im;  // (H, M, K)
};

// Gradients of a real loss ℒ given ∂ℒ/∂Re r and ∂ℒ/∂Im r; each complex gradient is returned as
// (∂ℒ/∂Re x, ∂ℒ/∂Im x).
struct CauchyGrads {
  Tensor v_re, v_im, lambda_re, lambda_im, z_re, z_im;
};

// Throws ssm::Error naming `op` and the argument for a wrong rank, shape or dtype.
void check_cauchy_inputs(const CauchyInputs& in, const char* op);

// All inputs contiguous, one float dtype; outputs in that dtype.
CauchyOutput cauchy_fwd(const CauchyInputs& in);
CauchyGrads cauchy_bwd(const CauchyInputs& in, const Tensor& grad_re, const Tensor& grad_im);

}  // namespace ssm::kernels::cpu
