#pragma once
// The selective scan of Mamba-1 as one differentiable op (the math is in
// ssm/kernels/selective_scan.h), and its single-step decode form.
//
//   auto [out, last] = selective_scan(u, delta, A, B, C,
//                                     {.D = D, .z = z, .delta_bias = dt_bias,
//                                      .delta_softplus = true});
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm {

struct SelectiveScanOptions {
  Tensor D{};              // (D) skip, or undefined
  Tensor z{};              // (B, D, L) gate (out = y ⊙ silu(z)), or undefined
  Tensor delta_bias{};     // (D), or undefined
  Tensor initial_state{};  // (B, D, N), or undefined (zeros)
  bool delta_softplus = false;
  int64_t chunk_size = 128;  // steps between the states saved for backward
};

struct SelectiveScanResult {
  Tensor out{};         // (B, D, L)
  Tensor last_state{};  // (B, D, N)
};

// u, delta (B, D, L); A (D, N); B, C (B, G, N, L) with D % G == 0. All of one float dtype.
// Differentiable in u, delta, A, B, C and every optional tensor.
SelectiveScanResult selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A,
                                   const Tensor& B, const Tensor& C,
                                   const SelectiveScanOptions& options = {});

// One decode step: `state` (B, D, N), contiguous, is advanced in place by x_t, dt_t (B, D)
// with A (D, N), B_t, C_t (B, G, N); D, dt_bias (D) and z_t (B, D) optional.
// Returns y_t (B, D). Not differentiable (inference).
Tensor selective_state_update(Tensor& state, const Tensor& x_t, const Tensor& dt_t, const Tensor& A,
                              const Tensor& B_t, const Tensor& C_t, const Tensor& D = Tensor(),
                              const Tensor& z_t = Tensor(), const Tensor& dt_bias = Tensor(),
                              bool dt_softplus = false);

}  // namespace ssm
