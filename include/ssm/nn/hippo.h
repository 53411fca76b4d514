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
// This is not perturb-then-diagonalise (PTD: hippo_ptd below), whose point is a non-unitary V.
DPLR hippo_dplr(HippoMeasure measure, int64_t N, double perturbation_norm = 0.0, uint64_t seed = 0);

// M = V Λ V⁻¹ for a real square float64 matrix M (Eigen's real-Schur eigensolver, float64).
// Columns of V have unit 2-norm; cond_V = σ_max(V)/σ_min(V) (+inf when V is singular to
// working precision). When cond_V·ε_machine ≳ 1, V_inv carries no correct digits: so it is
// for HiPPO-LegS itself from N ≈ 32 on (DESIGN §5: the reason S4D/S5 diagonalise only the
// normal part, and PTD perturbs first).
struct Eigendecomposition {
  int64_t N = 0;
  std::vector<complexd> lambda;  // (N), the solver's order
  std::vector<complexd> V;       // (N, N) row-major
  std::vector<complexd> V_inv;   // (N, N) row-major
  double cond_V = 0;
};
Eigendecomposition eigendecompose(const Tensor& M);

// Perturb-then-diagonalise (PTD; Yu, Mahoney, Erichson 2023) of HiPPO-LegS for a state of N
// real dimensions (N even, N/2 slots of the conjugate-pair layout): the full, non-normal A
// plus a random real E with spectral norm ‖E‖₂ = perturbation_norm (> 0), then
// A + E = V Λ V⁻¹ in float64. E = G·perturbation_norm/‖G‖₂, G i.i.d. standard normal drawn
// from Generator(seed).
// Real eigenvalues: a simple real eigenvalue stays real under a small real E (LegS's −1
// always does), and in the 2·Re layout it takes a whole slot for one real dimension. Dropping
// one is not an option: the modes of an ill-conditioned V cancel, so the rest would be far
// from A + E. So the HiPPO order is n = N − r where r is the number of real eigenvalues of
// LegS(n) + E: p pairs and r reals fill exactly p + r = N/2 slots. G is redrawn (from the
// same stream, so everything is a function of seed) at n = N − r of the last draw until this
// holds, every Re λ < 0 and no pair is nearly defective; `draws` counts them (usually a few).
// The slots (Im λ < 0 of each pair, then the reals, by |Im| ascending) give
//   A + E = 2·Re(V_h diag(Λ_h) W_h),  B̃ = W_h B,  C̃ = C·V_h  (y = 2·Re(C̃x) = C x_real),
// with W_h the matching rows of V⁻¹, halved for real modes (they are counted once, not twice).
// ‖E‖ trades accuracy for conditioning: cond(V) ≈ 1e5 at N = 64 and ‖E‖₂ = 0.1 (it exceeds
// 1/ε for LegS itself), so B̃ has entries ~cond(V) whose products with C̃ cancel.
struct PTD {
  int64_t N = 0;                 // the layout's real state size: N/2 slots
  int64_t n = 0;                 // the HiPPO order diagonalised: n = N − real_modes
  int64_t real_modes = 0;        // slots holding a real eigenvalue
  double perturbation_norm = 0;  // ‖E‖₂
  int64_t draws = 0;             // how many G were drawn
  Tensor E;                      // (n, n) float64
  Tensor A;                      // (n, n) float64: hippo(LegS, n).A + E, the matrix diagonalised
  std::vector<complexd> lambda;  // (N/2): Im ≤ 0, |Im| ascending
  std::vector<complexd> V;       // (n, N/2) row-major: unit-norm right eigenvectors
  std::vector<complexd> W;       // (N/2, n) row-major: rows of V⁻¹ (halved for real modes)
  std::vector<complexd> B;       // (N/2): B̃ = W_h B (B of HiPPO-LegS of order n)
  double cond_V = 0;             // σ_max/σ_min of the full V (n, n)
};
constexpr int64_t kMaxPtdDraws = 2000;
PTD hippo_ptd(int64_t N, double perturbation_norm, uint64_t seed = 0);

// S4D initialisations of the diagonal state matrix (N/2 complex modes; DESIGN §5):
//   Lin  Aₙ = −½ + iπn,  Inv  Aₙ = −½ + i(N/π)(N/(2n+1) − 1),  Real  Aₙ = −(n+1),
//   LegS Aₙ = Λₙ of hippo_dplr(LegS), with B = B̃ = V*B,
//   LegSPTD Aₙ = Λₙ of hippo_ptd(N, perturbation_norm, seed), B = W_h B, and V = V_h (n, N/2)
//   so that the layer's C̃ = C·V_h for a real C (n entries).
// B = 1 for the others. n = 0 .. N/2−1. perturbation_norm (> 0) applies to LegSPTD only.
enum class S4DInit { Lin, Inv, Real, LegS, LegSPTD };
S4DInit s4d_init_from_name(const std::string& name);  // "lin", "inv", "real", "legs", "legs-ptd"
const char* s4d_init_name(S4DInit init);

struct DiagonalInit {
  std::vector<complexd> A;  // (N/2)
  std::vector<complexd> B;  // (N/2)
  std::vector<complexd> V;  // (n, N/2) row-major, LegSPTD only (empty otherwise)
};
DiagonalInit s4d_init(S4DInit init, int64_t N, double perturbation_norm = 0.0, uint64_t seed = 0);

}  // namespace ssm::nn
