#pragma once
// SSD (Mamba-2 state space duality) kernels: pure compute, no autograd. CPU implementations.
//
// Per batch b and head h (head h reads group g = h / (H / G) of B and C), with a scalar decay
// a_l = dt_l · A_h per step and a state S ∈ R^{P×N}:
//   S_l = exp(a_l) · S_{l−1} + dt_l · x_l B_lᵀ          (S_{−1} = initial state or 0)
//   y_l = S_l C_l + D_h · x_l
// The chunked algorithm (chunk length Q) computes the same thing with matrix products:
//   intra-chunk  Y = (C Bᵀ ∘ Λ) (dt ∘ X),  Λ_ij = exp(Σ_{k=j+1..i} a_k) for i ≥ j, else 0
//   chunk state  S_end = Σ_j exp(Σ_{k>j} a_k) dt_j x_j B_jᵀ  (plus the decayed incoming state)
//   inter-chunk  a short scan of the chunk states (accepts the initial state)
//   state → out  Y += exp(Σ_{k≤i} a_k) · S_in C_i
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm::kernels::cpu {

struct SsdInputs {
  Tensor x{};   // (B, L, H, P)
  Tensor dt{};  // (B, L, H), the (positive) step sizes
  Tensor A{};   // (H), negative for a decaying state
  Tensor B{};   // (B, L, G, N), H % G == 0
  Tensor C{};   // (B, L, G, N)
  // Optional (undefined = absent).
  Tensor D{};                // (H) skip
  Tensor initial_state{};    // (B, H, P, N)
  int64_t chunk_size = 128;  // Q; the sequential path ignores it (128 is fastest on CPU)
};

struct SsdOutputs {
  Tensor y{};            // (B, L, H, P)
  Tensor final_state{};  // (B, H, P, N)
};

// Gradients of every input; dD and dinitial_state are undefined when those were absent.
struct SsdGrads {
  Tensor dx{}, ddt{}, dA{}, dB{}, dC{}, dD{}, dinitial_state{};
};

// Throws ssm::Error naming `op` and the offending argument for any bad shape, dtype, or option.
void check_ssd_inputs(const SsdInputs& in, const char* op);

// The chunked algorithm (GEMMs through OpenBLAS).
SsdOutputs ssd_chunked_fwd(const SsdInputs& in);
// The plain recurrence, one step at a time: for short inputs, and the reference.
SsdOutputs ssd_sequential(const SsdInputs& in);
// Exact gradients through the chunked algorithm (recomputes the chunk states).
// dy (B, L, H, P); dfinal_state (B, H, P, N) or undefined (= zeros).
SsdGrads ssd_bwd(const SsdInputs& in, const Tensor& dy, const Tensor& dfinal_state);

// One decode step for every (b, h). `state` (B, H, P, N) is updated in place and must be
// contiguous with the inputs' dtype. x (B, H, P); dt (B, H); A (H); B, C (B, G, N); D (H)
// optional. Returns y (B, H, P).
struct SsdStepInputs {
  Tensor x{}, dt{}, A{}, B{}, C{}, D{};
};
Tensor ssd_state_update(Tensor& state, const SsdStepInputs& in);
// The shape, dtype and device checks of ssd_state_update (shared with the CUDA kernel).
void check_ssd_step_inputs(const Tensor& state, const SsdStepInputs& in, const char* op);

}  // namespace ssm::kernels::cpu
