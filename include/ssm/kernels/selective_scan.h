#pragma once
// Selective scan (Mamba-1, "S6") kernels: pure compute, no autograd. CPU implementations.
//
// Per batch b and channel d (channel d reads group g = d / (D / G) of B and C):
//   dt_l  = softplus(delta_l + delta_bias)        (or delta_l + delta_bias without the flag)
//   h_l   = exp(dt_l · A) ⊙ h_{l−1} + dt_l · B_l · u_l           (h ∈ R^N, h_{−1} = h0 or 0)
//   y_l   = C_l · h_l + Dskip · u_l
//   out_l = y_l · silu(z_l)                                      (when z is given)
// The (B, L, D, N) tensor of states is never materialised: the forward keeps one state of N
// numbers per channel and saves only the state entering each chunk of `chunk_size` steps
// (B, D, ceil(L / chunk), N); the backward recomputes the states inside each chunk from it.
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm::kernels::cpu {

struct SelectiveScanInputs {
  Tensor u{};      // (B, D, L)
  Tensor delta{};  // (B, D, L)
  Tensor A{};      // (D, N)
  Tensor B{};      // (B, G, N, L), D % G == 0
  Tensor C{};      // (B, G, N, L)
  // Optional (undefined = absent).
  Tensor D{};              // (D) skip connection
  Tensor z{};              // (B, D, L) gate: out = y · silu(z)
  Tensor delta_bias{};     // (D)
  Tensor initial_state{};  // (B, D, N)
  bool delta_softplus = false;
  int64_t chunk_size = 128;  // steps between saved states (memory vs. recompute granularity)
};

struct SelectiveScanForward {
  Tensor out{};           // (B, D, L)
  Tensor last_state{};    // (B, D, N): h_{L−1}
  Tensor chunk_states{};  // (B, D, ceil(L / chunk_size), N): state entering each chunk
};

// Gradients of every input; the optional ones are undefined when the input was absent.
struct SelectiveScanGrads {
  Tensor du{}, ddelta{}, dA{}, dB{}, dC{}, dD{}, dz{}, ddelta_bias{}, dinitial_state{};
};

// Throws ssm::Error naming `op` and the offending argument for any bad shape, dtype, or option.
void check_selective_scan_inputs(const SelectiveScanInputs& in, const char* op);

SelectiveScanForward selective_scan_fwd(const SelectiveScanInputs& in);

// dout (B, D, L); dlast_state (B, D, N) or undefined (= zeros). chunk_states from the forward.
SelectiveScanGrads selective_scan_bwd(const SelectiveScanInputs& in, const Tensor& chunk_states,
                                      const Tensor& dout, const Tensor& dlast_state);

// One recurrent (decode) step for every (b, d). `state` (B, D, N) is updated in place and must
// be contiguous with the inputs' dtype. x, dt (B, D); A (D, N); B, C (B, G, N); D, dt_bias (D)
// and z (B, D) optional. Returns y (B, D) (gated by silu(z) when z is given).
struct SelectiveStepInputs {
  Tensor x{}, dt{}, A{}, B{}, C{};
  Tensor D{}, z{}, dt_bias{};
  bool dt_softplus = false;
};
Tensor selective_state_update(Tensor& state, const SelectiveStepInputs& in);
// Shapes, dtypes and one device for all; throws ssm::Error naming `op`.
void check_selective_step_inputs(const Tensor& state, const SelectiveStepInputs& in,
                                 const char* op);

}  // namespace ssm::kernels::cpu

// The same scan on CUDA tensors (every input on the GPU; any strides). The forward's
// chunk_states are saved every kScanChunk = 1024 steps whatever in.chunk_size says, shape
// (B, D, ceil(L / 1024), N), and are meant for the CUDA backward only. Without the CUDA backend
// both throw ssm::Error.
namespace ssm::kernels::cuda {

cpu::SelectiveScanForward selective_scan_fwd(const cpu::SelectiveScanInputs& in);
cpu::SelectiveScanGrads selective_scan_bwd(const cpu::SelectiveScanInputs& in,
                                           const Tensor& chunk_states, const Tensor& dout,
                                           const Tensor& dlast_state);
Tensor selective_state_update(Tensor& state, const cpu::SelectiveStepInputs& in);

}  // namespace ssm::kernels::cuda
