#pragma once
// Mamba-3 (SISO) scan kernels: pure compute, no autograd. CPU implementations.
//
// Per batch b and head h (head h reads group g = h / (H / G) of B and C), a state
// S ∈ R^{P×N} and the exponential-trapezoidal discretisation of the Mamba-3 paper:
//   α_t = exp(A_t dt_t),  β_t = (1 − λ_t) dt_t α_t,  γ_t = λ_t dt_t
//   S_t = α_t S_{t−1} + β_t x_{t−1} B_{t−1}ᵀ + γ_t x_t B_tᵀ       (S_{−1} = initial state or 0)
//   y_t = S_t C_t + D_h x_t
// The β term at t = 0 reads the previous step's (x, B) from `initial_x` / `initial_B` (the
// decode cache of an earlier call) and is absent without them. B and C arrive already rotated
// (see ssm/kernels/mamba3_rotary.h), so the real recurrence here is the paper's complex one.
// A is either one value per head (H) or data-dependent (B, L, H) as in the reference
// mamba_ssm Mamba3 module (A = −softplus(dd_A)).
//
// The (B, L, H, P, N) tensor of states is never materialised: the forward keeps one state per
// (b, h) and saves only the state entering each chunk of `chunk_size` steps; the backward
// recomputes the states inside each chunk from it, walking the chunks in reverse.
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm::kernels::cpu {

struct Mamba3ScanInputs {
  Tensor x{};       // (B, L, H, P)
  Tensor dt{};      // (B, L, H), ≥ 0
  Tensor A{};       // (H) or (B, L, H), ≤ 0
  Tensor lambda{};  // (B, L, H), the trapezoid weight λ in [0, 1]
  Tensor B{};       // (B, L, G, N), H % G == 0
  Tensor C{};       // (B, L, G, N)
  // Optional (undefined = absent).
  Tensor D{};               // (H) skip
  Tensor initial_state{};   // (B, H, P, N)
  Tensor initial_B{};       // (B, G, N): B of the step before the first; needs initial_x
  Tensor initial_x{};       // (B, H, P): x of the step before the first; needs initial_B
  int64_t chunk_size = 64;  // steps between saved states (memory vs. recompute granularity)
};

struct Mamba3ScanForward {
  Tensor y{};             // (B, L, H, P)
  Tensor final_state{};   // (B, H, P, N): S_{L−1}
  Tensor chunk_states{};  // (B, H, ceil(L / chunk_size), P, N): the state entering each chunk
};

// Gradients of every input; the optional ones are undefined when the input was absent.
// dA has A's shape.
struct Mamba3ScanGrads {
  Tensor dx{}, ddt{}, dA{}, dlambda{}, dB{}, dC{}, dD{}, dinitial_state{}, dinitial_B{},
      dinitial_x{};
};

// Throws ssm::Error naming `op` and the offending argument for any bad shape, dtype, or option.
void check_mamba3_scan_inputs(const Mamba3ScanInputs& in, const char* op);
// Throws ssm::Error naming `op`, the argument and the first offending position when dt < 0,
// A > 0, λ outside [0, 1], or any of them is NaN or infinite. (NaN in x, B, C propagates.)
void check_mamba3_scan_values(const Mamba3ScanInputs& in, const char* op);

// The forward; chunk_states are only filled when `save_chunk_states` (the backward needs them).
Mamba3ScanForward mamba3_scan_fwd(const Mamba3ScanInputs& in, bool save_chunk_states = true);

// dy (B, L, H, P); dfinal_state (B, H, P, N) or undefined (= zeros). chunk_states from the
// forward with the same inputs.
Mamba3ScanGrads mamba3_scan_bwd(const Mamba3ScanInputs& in, const Tensor& chunk_states,
                                const Tensor& dy, const Tensor& dfinal_state);

// One decode step for every (b, h). `state` (B, H, P, N), `prev_B` (B, G, N) and `prev_x`
// (B, H, P) are the cache: they are read as S_{t−1}, B_{t−1}, x_{t−1} and overwritten with
// S_t, B_t, x_t (all contiguous, of the inputs' dtype). x (B, H, P); dt, lambda (B, H);
// A (H) or (B, H); B, C (B, G, N); D (H) optional. Returns y (B, H, P).
struct Mamba3StepInputs {
  Tensor x{}, dt{}, A{}, lambda{}, B{}, C{}, D{};
};
Tensor mamba3_state_update(Tensor& state, Tensor& prev_B, Tensor& prev_x,
                           const Mamba3StepInputs& in);

}  // namespace ssm::kernels::cpu
