#pragma once
// The S5 linear recurrence with a time-invariant diagonal complex transition: pure compute, no
// autograd. CPU.
//
//   forward direction:  x_l = a ⊙ x_{l−1} + b_l,  x_{−1} = 0,  l = 0 .. L−1
//   reverse direction:  x_l = a ⊙ x_{l+1} + b_l,  x_L = 0
// a (P) complex, b and x (B, L, P) complex; complex values travel as (re, im) pairs of real
// tensors. P (the modes) is the contiguous, vectorised dimension.
//
// Chunked parallel scan: the sequence is cut into chunks; (1) every chunk is scanned from a zero
// state, all chunks of all sequences in parallel; (2) the true state entering each chunk is
// carried across chunks, s_c = a^{len} ⊙ s_{c−1} + (chunk c−1's local end state), a short
// sequential pass; (3) every chunk adds a^{k+1} ⊙ s_c to its k-th local state, in parallel.
// With one chunk per sequence this is the plain sequential recurrence (used when the batch
// alone fills the threads).
//
// Backward (a hand-written reverse scan): with g = ∂ℒ/∂x, and gradients of complex values taken
// as ∂ℒ/∂Re + i·∂ℒ/∂Im, the adjoint δ_l = ∂ℒ/∂b_l obeys the same recurrence in the opposite
// direction with conj(a): δ_l = g_l + conj(a) ⊙ δ_{l+1} (forward direction), and
// ∂ℒ/∂a = Σ_{b,l} conj(x_{l−1}) ⊙ δ_l (reverse direction: x_{l+1}).
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm::kernels::cpu {

struct S5ScanResult {
  Tensor x_re, x_im;  // (B, L, P)
};

struct S5ScanGrads {
  Tensor a_re, a_im;  // (P)
  Tensor b_re, b_im;  // (B, L, P)
};

// Throws ssm::Error naming `op` and the argument for a wrong rank, shape, dtype or chunk_len < 0.
void check_s5_scan_inputs(const Tensor& a_re, const Tensor& a_im, const Tensor& b_re,
                          const Tensor& b_im, int64_t chunk_len, const char* op);

// All inputs contiguous, one float dtype. chunk_len = 0 picks the chunking from the thread
// count; a positive value forces chunks of that many steps (tests use it).
S5ScanResult s5_scan_fwd(const Tensor& a_re, const Tensor& a_im, const Tensor& b_re,
                         const Tensor& b_im, bool reverse, int64_t chunk_len = 0);

// x_re, x_im: the forward's outputs; g_re, g_im = ∂ℒ/∂x (B, L, P). All contiguous.
S5ScanGrads s5_scan_bwd(const Tensor& a_re, const Tensor& a_im, const Tensor& x_re,
                        const Tensor& x_im, const Tensor& g_re, const Tensor& g_im, bool reverse,
                        int64_t chunk_len = 0);

}  // namespace ssm::kernels::cpu
