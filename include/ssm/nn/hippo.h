#pragma once
// HiPPO transition matrices and the initialisations of the LTI layers (S4, S4D) built on them.
// Everything here runs once at initialisation, in float64, and is checked against the
// defining equations in tests/nn/test_hippo.cpp (DESIGN §5).
//
// Conjugate-pair layout: a real state of size N (even) is carried as N/2 complex modes; the
// other N/2 are their complex conjugates and are implied (outputs use 2·Re). The kept half is
// the one with negative imaginary part, ordered by |Im| ascending (slowest rotation first).
#include <complex>
#include <cstdint>
#include <string>
#include <vector>

#include "ssm/core/tensor.h"

namespace ssm::nn {

using complexd = std::complex<double>;

enum class HippoMeasure {
  LegS,  // scaled Legendre (the S4 default): A + PPᵀ = −½I + skew, rank 1
  LegT,  // translated Legendre, window θ = 1, orthonormal basis: A + PPᵀ skew, rank 2
  FouT,  // translated Fourier, window 1: A + BBᵀ skew, rank 1 (no DPLR: J has a zero eigenvalue)
};
HippoMeasure hippo_measure_from_name(const std::string& name);  // "legs", "legt", "fout"
const char* hippo_measure_name(HippoMeasure m);

// The continuous-time HiPPO system x' = A x + B u (state size N), plus the low-rank factor P
// (rank, N) with which A + Σ_r P_r P_rᵀ has symmetric part c·I (it is normal). Float64.
struct HippoMatrices {
  Tensor A;  // (N, N)
  Tensor B;  // (N)
  Tensor P;  // (rank, N)
};
HippoMatrices hippo(HippoMeasure measure, int64_t N);

// A real matrix A = S − Σ_r P_r P_rᵀ with S = c·I + skew-symmetric, written in the unitary
// eigenbasis V of S: A = V (Λ − P̃ P̃*) V*, B = V B̃, with P̃ = V*P, B̃ = V*B (DESIGN §5).
// Only the conjugate-pair half is stored (V = [V_h, conj V_h], Λ = [Λ_h, conj Λ_h]), so
//   S = 2·Re(V_h diag(Λ_h) V_h*),  P_r = 2·Re(V_h P̃_r),  B = 2·Re(V_h B̃).
struct DPLR {
  int64_t N = 0;     // real state size (even)
  int64_t rank = 0;  // number of low-rank columns
  Tensor A;          // (N, N) float64: the matrix that was decomposed (perturbation included)
  std::vector<complexd> lambda;  // (N/2): c + i·μ with μ < 0
  std::vector<complexd> P;       // (rank, N/2) row-major: P̃ = V_h* P
  std::vector<complexd> B;       // (N/2): B̃ = V_h* B
  std::vector<complexd> V;       // (N, N/2) row-major, orthonormal columns
};

// Decomposes A given P (rank, N) and B (N), all float64. Throws when A + PᵀP's symmetric part
// is not a multiple of I (then V would not be unitary), when N is odd, or when S has a zero
// eigenvalue (it cannot be split into conjugate pairs).
DPLR dplr_from_normal_plus_low_rank(const Tensor& A, const Tensor& P, const Tensor& B);

// The DPLR form of hippo(measure, N) (LegS or LegT; N even). With perturbation_norm > 0 a
// random skew-symmetric E with ‖E‖_F = perturbation_norm (seeded) is added to A before
// diagonalising: A + PPᵀ stays c·I + skew, so the eigenbasis stays unitary and Re Λ = c
// exactly, while near-degenerate eigenvalues are split (each moves by at most ‖E‖₂ ≤ ‖E‖_F).
DPLR hippo_dplr(HippoMeasure measure, int64_t N, double perturbation_norm = 0.0, uint64_t seed = 0);

// S4D initialisations of the diagonal state matrix (N/2 complex modes; DESIGN §5):
//   Lin  Aₙ = −½ + iπn,  Inv  Aₙ = −½ + i(N/π)(N/(2n+1) − 1),  Real  Aₙ = −(n+1),
//   LegS Aₙ = Λₙ of hippo_dplr(LegS) (optionally perturbed), with B = B̃ = V*B.
// B = 1 for the others. n = 0 .. N/2−1.
enum class S4DInit { Lin, Inv, Real, LegS };
S4DInit s4d_init_from_name(const std::string& name);  // "lin", "inv", "real", "legs"
const char* s4d_init_name(S4DInit init);

struct DiagonalInit {
  std::vector<complexd> A;  // (N/2)
  std::vector<complexd> B;  // (N/2)
};
DiagonalInit s4d_init(S4DInit init, int64_t N, double perturbation_norm = 0.0, uint64_t seed = 0);

}  // namespace ssm::nn
