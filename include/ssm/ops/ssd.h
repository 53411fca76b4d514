#pragma once
// SSD (Mamba-2's state space duality scan) as one differentiable op (the math is in
// ssm/kernels/ssd.h), and its single-step decode form.
//
//   auto [y, final_state] = ssd(x, dt, A, B, C, {.D = D});
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm {

struct SsdOptions {
  Tensor D{};                // (H) skip, or undefined
  Tensor initial_state{};    // (B, H, P, N), or undefined (zeros)
  int64_t chunk_size = 128;  // Q of the chunked algorithm
};

struct SsdResult {
  Tensor y{};            // (B, L, H, P)
  Tensor final_state{};  // (B, H, P, N)
};

// x (B, L, H, P); dt (B, L, H) positive; A (H); B, C (B, L, G, N) with H % G == 0.
// y_l = S_l C_l + D x_l with S_l = exp(dt_l A) S_{l−1} + dt_l x_l B_lᵀ. Short sequences take
// the sequential recurrence, longer ones the chunked algorithm; the backward is exact through
// the chunked algorithm either way. Differentiable in every tensor argument.
SsdResult ssd(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
              const SsdOptions& options = {});

// One decode step: `state` (B, H, P, N), contiguous, is advanced in place by x_t (B, H, P),
// dt_t (B, H) with A (H), B_t, C_t (B, G, N); D (H) optional. Returns y_t (B, H, P).
// Not differentiable (inference).
Tensor ssd_state_update(Tensor& state, const Tensor& x_t, const Tensor& dt_t, const Tensor& A,
                        const Tensor& B_t, const Tensor& C_t, const Tensor& D = Tensor());

}  // namespace ssm
