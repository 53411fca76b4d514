#pragma once
// The Mamba-3 (SISO) exponential-trapezoidal scan as one differentiable op (the math is in
// ssm/kernels/mamba3_scan.h), and its single-step decode form.
//
//   auto [y, final_state] = mamba3_scan(x, dt, A, lambda, B_rot, C_rot, {.D = D});
//
// Continuing a sequence: pass the state after the earlier part as `initial_state` and that
// part's last x and B as `initial_x`, `initial_B` (the trapezoid's β term reaches one step
// back), which is exactly what mamba3_state_update keeps in its cache.
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm {

struct Mamba3ScanOptions {
  Tensor D{};               // (H) skip, or undefined
  Tensor initial_state{};   // (B, H, P, N), or undefined (zeros)
  Tensor initial_B{};       // (B, G, N): B of the step before the first, with initial_x
  Tensor initial_x{};       // (B, H, P): x of the step before the first, with initial_B
  int64_t chunk_size = 64;  // steps between the states saved for backward
};

struct Mamba3ScanResult {
  Tensor y{};            // (B, L, H, P)
  Tensor final_state{};  // (B, H, P, N)
};

// x (B, L, H, P); dt (B, L, H) ≥ 0; A (H) or (B, L, H) ≤ 0; lambda (B, L, H) in [0, 1];
// B, C (B, L, G, N) with H % G == 0, already rotated. All of one float dtype; dt, A and lambda
// are checked (an ssm::Error names the argument and the position of a bad value).
// Differentiable in every tensor argument.
Mamba3ScanResult mamba3_scan(const Tensor& x, const Tensor& dt, const Tensor& A,
                             const Tensor& lambda, const Tensor& B, const Tensor& C,
                             const Mamba3ScanOptions& options = {});

// One decode step. The cache — `state` (B, H, P, N), `prev_B` (B, G, N), `prev_x` (B, H, P),
// contiguous, zeros before the first token — is read as the previous step and overwritten
// with this one. x_t (B, H, P); dt_t, lambda_t (B, H); A (H) or (B, H); B_t, C_t (B, G, N);
// D (H) optional. Returns y_t (B, H, P). Not differentiable (inference).
Tensor mamba3_state_update(Tensor& state, Tensor& prev_B, Tensor& prev_x, const Tensor& x_t,
                           const Tensor& dt_t, const Tensor& A, const Tensor& lambda_t,
                           const Tensor& B_t, const Tensor& C_t, const Tensor& D = Tensor());

}  // namespace ssm
