// HiPPO matrices and their DPLR decomposition, checked against the defining equations with
// plain loops (DESIGN §5).
#include <cmath>
#include <limits>
#include <numbers>

#include "ssm/nn/hippo.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::nn;
using ssm::testing::random;

namespace {

using Mat = std::vector<double>;  // row-major N×N

Mat to_mat(const Tensor& t) {
  return t.contiguous().to_vector();
}

double frob(const Mat& m) {
  double s = 0;
  for (double v : m) s += v * v;
  return std::sqrt(s);
}

double rel_diff(const Mat& a, const Mat& b) {
  double d = 0, r = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (a[i] - b[i]) * (a[i] - b[i]);
    r += b[i] * b[i];
  }
  return std::sqrt(d) / std::sqrt(r);
}

// S = A + Σ_r P_r P_rᵀ.
Mat normal_part(const HippoMatrices& h, int64_t N) {
  Mat S = to_mat(h.A);
  const int64_t rank = h.P.size(0);
  for (int64_t r = 0; r < rank; ++r)
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) S[i * N + j] += h.P.at({r, i}) * h.P.at({r, j});
  return S;
}

// 2·Re(V_h x) for a length-N/2 complex vector x: the real N-vector it represents.
std::vector<double> realify(const DPLR& d, const complexd* x) {
  const int64_t half = d.N / 2;
  std::vector<double> out(d.N, 0.0);
  for (int64_t i = 0; i < d.N; ++i) {
    complexd s = 0;
    for (int64_t j = 0; j < half; ++j) s += d.V[i * half + j] * x[j];
    out[i] = 2 * s.real();
  }
  return out;
}

// A rebuilt from the DPLR factors: 2·Re(V_h Λ V_h*) − Σ_r p_r p_rᵀ with p_r = 2·Re(V_h P̃_r).
Mat reconstruct(const DPLR& d) {
  const int64_t N = d.N, half = N / 2;
  Mat A(N * N, 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t k = 0; k < N; ++k) {
      complexd s = 0;
      for (int64_t j = 0; j < half; ++j)
        s += d.V[i * half + j] * d.lambda[j] * std::conj(d.V[k * half + j]);
      A[i * N + k] = 2 * s.real();
    }
  for (int64_t r = 0; r < d.rank; ++r) {
    std::vector<double> p = realify(d, &d.P[r * half]);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t k = 0; k < N; ++k) A[i * N + k] -= p[i] * p[k];
  }
  return A;
}

// max |V_h* V_h − I| and max |V_hᵀ V_h| (the kept half is orthogonal to its conjugates).
std::pair<double, double> orthonormality_error(const DPLR& d) {
  const int64_t N = d.N, half = N / 2;
  double e_unit = 0, e_conj = 0;
  for (int64_t a = 0; a < half; ++a)
    for (int64_t b = 0; b < half; ++b) {
      complexd g = 0, h = 0;
      for (int64_t i = 0; i < N; ++i) {
        g += std::conj(d.V[i * half + a]) * d.V[i * half + b];
        h += d.V[i * half + a] * d.V[i * half + b];
      }
      e_unit = std::max(e_unit, std::abs(g - complexd(a == b ? 1.0 : 0.0)));
      e_conj = std::max(e_conj, std::abs(h));
    }
  return {e_unit, e_conj};
}

void expect_valid_dplr(const DPLR& d, double re_lambda) {
  const int64_t half = d.N / 2;
  EXPECT_LE(rel_diff(reconstruct(d), to_mat(d.A)), 1e-10);
  auto [e_unit, e_conj] = orthonormality_error(d);
  EXPECT_LE(e_unit, 1e-12);
  EXPECT_LE(e_conj, 1e-12);
  for (int64_t j = 0; j < half; ++j) {
    EXPECT_NEAR(d.lambda[j].real(), re_lambda, 1e-12);
    EXPECT_LT(d.lambda[j].imag(), 0.0);
    if (j > 0) {
      EXPECT_GE(std::abs(d.lambda[j].imag()), std::abs(d.lambda[j - 1].imag()));
    }
  }
}

}  // namespace

TEST(Hippo, LegSMatchesTheDefinition) {
  const int64_t N = 7;
  HippoMatrices h = hippo(HippoMeasure::LegS, N);
  ASSERT_EQ(shape_str(h.A.shape()), "(7, 7)");
  for (int64_t n = 0; n < N; ++n) {
    EXPECT_DOUBLE_EQ(h.B.at({n}), std::sqrt(2.0 * n + 1));
    EXPECT_DOUBLE_EQ(h.P.at({0, n}), std::sqrt(n + 0.5));
    for (int64_t k = 0; k < N; ++k) {
      const double want = n > k    ? -std::sqrt(2.0 * n + 1) * std::sqrt(2.0 * k + 1)
                          : n == k ? -(n + 1.0)
                                   : 0.0;  // lower triangular
      EXPECT_DOUBLE_EQ(h.A.at({n, k}), want) << n << "," << k;
    }
  }
}

TEST(Hippo, NormalPartIsMinusHalfPlusSkewForLegSAndSkewForLegTFouT) {
  const int64_t N = 12;
  const std::pair<HippoMeasure, double> cases[] = {
      {HippoMeasure::LegS, -0.5}, {HippoMeasure::LegT, 0.0}, {HippoMeasure::FouT, 0.0}};
  for (auto [m, c] : cases) {
    HippoMatrices h = hippo(m, N);
    Mat S = normal_part(h, N);
    double asym = 0;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j)
        asym = std::max(asym, std::abs(S[i * N + j] + S[j * N + i] - (i == j ? 2 * c : 0.0)));
    EXPECT_LE(asym, 1e-12 * frob(S)) << hippo_measure_name(m);
    // Normal: S Sᵀ = Sᵀ S.
    Mat SSt(N * N, 0.0), StS(N * N, 0.0);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j)
        for (int64_t k = 0; k < N; ++k) {
          SSt[i * N + j] += S[i * N + k] * S[j * N + k];
          StS[i * N + j] += S[k * N + i] * S[k * N + j];
        }
    EXPECT_LE(rel_diff(SSt, StS), 1e-12) << hippo_measure_name(m);
  }
}

TEST(Hippo, ConstantInputIsAFixedPointAtTheFirstBasisFunction) {
  // A constant signal projects onto the constant basis function only, so A e₀ + B = 0.
  for (HippoMeasure m : {HippoMeasure::LegS, HippoMeasure::LegT, HippoMeasure::FouT}) {
    for (int64_t N : {5, 8}) {
      HippoMatrices h = hippo(m, N);
      for (int64_t n = 0; n < N; ++n)
        EXPECT_NEAR(h.A.at({n, 0}) + h.B.at({n}), 0.0, 1e-12) << hippo_measure_name(m) << n;
    }
  }
}

TEST(Hippo, FouTRotatesEachFrequencyPair) {
  HippoMatrices h = hippo(HippoMeasure::FouT, 6);
  const double two_pi = 2 * std::numbers::pi;
  // A = J − BBᵀ with B = (1, √2, 0, √2, 0, √2).
  EXPECT_NEAR(h.A.at({1, 2}), two_pi, 1e-12);
  EXPECT_NEAR(h.A.at({2, 1}), -two_pi, 1e-12);
  EXPECT_NEAR(h.A.at({3, 4}) + h.B.at({3}) * h.B.at({4}), 2 * two_pi, 1e-12);
  EXPECT_NEAR(h.A.at({5, 5}), -2.0, 1e-12);  // the unpaired cosine only loses −BBᵀ
  EXPECT_EQ(h.B.at({2}), 0.0);
}

TEST(Hippo, LegSDecompositionReconstructsA) {
  for (int64_t N : {2, 8, 64, 256}) {
    SCOPED_TRACE(N);
    DPLR d = hippo_dplr(HippoMeasure::LegS, N);
    ASSERT_EQ(d.rank, 1);
    ASSERT_EQ(static_cast<int64_t>(d.lambda.size()), N / 2);
    EXPECT_LE(rel_diff(to_mat(d.A), to_mat(hippo(HippoMeasure::LegS, N).A)), 0.0);
    expect_valid_dplr(d, -0.5);
    HippoMatrices h = hippo(HippoMeasure::LegS, N);
    EXPECT_LE(rel_diff(realify(d, d.B.data()), h.B.to_vector()), 1e-10);
    EXPECT_LE(rel_diff(realify(d, d.P.data()), h.P.to_vector()), 1e-10);
  }
}

TEST(Hippo, LegSEigenpairsSolveTheNormalPart) {
  // S v = λ v for each kept pair: the eigenvalues of A + PPᵀ have Re = −½.
  const int64_t N = 16, half = N / 2;
  HippoMatrices h = hippo(HippoMeasure::LegS, N);
  DPLR d = hippo_dplr(HippoMeasure::LegS, N);
  Mat S = normal_part(h, N);
  for (int64_t j = 0; j < half; ++j) {
    double res = 0;
    for (int64_t i = 0; i < N; ++i) {
      complexd sv = 0;
      for (int64_t k = 0; k < N; ++k) sv += S[i * N + k] * d.V[k * half + j];
      res = std::max(res, std::abs(sv - d.lambda[j] * d.V[i * half + j]));
    }
    EXPECT_LE(res, 1e-12 * frob(S)) << j;
  }
}

TEST(Hippo, LegTDecompositionIsRankTwo) {
  const int64_t N = 32;
  DPLR d = hippo_dplr(HippoMeasure::LegT, N);
  ASSERT_EQ(d.rank, 2);
  expect_valid_dplr(d, 0.0);
  HippoMatrices h = hippo(HippoMeasure::LegT, N);
  EXPECT_LE(rel_diff(realify(d, d.B.data()), h.B.to_vector()), 1e-10);
}

TEST(Hippo, PerturbationMovesEigenvaluesByAtMostItsNorm) {
  const int64_t N = 32, half = N / 2;
  const double eps = 0.3;
  DPLR base = hippo_dplr(HippoMeasure::LegS, N);
  DPLR pert = hippo_dplr(HippoMeasure::LegS, N, eps, /*seed=*/5);
  expect_valid_dplr(pert, -0.5);
  Mat diff = to_mat(pert.A), A0 = to_mat(base.A);
  for (size_t i = 0; i < diff.size(); ++i) diff[i] -= A0[i];
  EXPECT_NEAR(frob(diff), eps, 1e-12);
  // Both spectra are sorted by |Im|; Weyl's inequality bounds each shift by ‖E‖₂ ≤ ‖E‖_F.
  double moved = 0;
  for (int64_t j = 0; j < half; ++j) {
    const double shift = std::abs(pert.lambda[j].imag() - base.lambda[j].imag());
    EXPECT_LE(shift, eps + 1e-12) << j;
    moved = std::max(moved, shift);
  }
  EXPECT_GT(moved, 1e-4);
  // Same seed, same result; another seed, another result.
  DPLR again = hippo_dplr(HippoMeasure::LegS, N, eps, 5);
  DPLR other = hippo_dplr(HippoMeasure::LegS, N, eps, 6);
  EXPECT_EQ(again.lambda[3], pert.lambda[3]);
  EXPECT_NE(other.lambda[3], pert.lambda[3]);
}

TEST(Hippo, S4DInitsFollowTheirFormulas) {
  const int64_t N = 10, half = N / 2;
  const double pi = std::numbers::pi;
  DiagonalInit lin = s4d_init(S4DInit::Lin, N), inv = s4d_init(S4DInit::Inv, N),
               real = s4d_init(S4DInit::Real, N), legs = s4d_init(S4DInit::LegS, N);
  DPLR d = hippo_dplr(HippoMeasure::LegS, N);
  for (int64_t n = 0; n < half; ++n) {
    EXPECT_EQ(lin.A[n], complexd(-0.5, pi * n));
    EXPECT_NEAR(inv.A[n].imag(), N / pi * (static_cast<double>(N) / (2 * n + 1) - 1), 1e-12);
    EXPECT_EQ(inv.A[n].real(), -0.5);
    EXPECT_EQ(real.A[n], complexd(-(n + 1.0), 0.0));
    EXPECT_EQ(lin.B[n], complexd(1.0, 0.0));
    EXPECT_EQ(legs.A[n], d.lambda[n]);
    EXPECT_EQ(legs.B[n], d.B[n]);
  }
  EXPECT_EQ(s4d_init_from_name("inv"), S4DInit::Inv);
  EXPECT_EQ(hippo_measure_from_name("legt"), HippoMeasure::LegT);
}

TEST(Hippo, BadInputsAreRejected) {
  EXPECT_SSM_ERROR(hippo_dplr(HippoMeasure::LegS, 7), "hippo_dplr", "'N'", "even", "7");
  EXPECT_SSM_ERROR(s4d_init(S4DInit::Lin, 5), "s4d_init", "'N'", "even", "5");
  EXPECT_SSM_ERROR(hippo(HippoMeasure::LegS, 0), "hippo", "'N'", ">= 1", "0");
  EXPECT_SSM_ERROR(hippo_dplr(HippoMeasure::FouT, 8), "hippo_dplr", "fout");
  EXPECT_SSM_ERROR(hippo_dplr(HippoMeasure::LegS, 8, -1.0), "perturbation_norm", "-1");
  EXPECT_SSM_ERROR(s4d_init(S4DInit::Lin, 8, 0.1), "s4d_init", "perturbation_norm", "lin");
  EXPECT_SSM_ERROR(s4d_init_from_name("diag"), "s4d_init", "'init'", "diag");
  EXPECT_SSM_ERROR(hippo_measure_from_name("legx"), "hippo", "'measure'", "legx");
  // A random A is not normal-plus-low-rank.
  Tensor A = random({6, 6}, DType::F64, 3), P = random({1, 6}, DType::F64, 4),
         B = random({6}, DType::F64, 5);
  EXPECT_SSM_ERROR(dplr_from_normal_plus_low_rank(A, P, B), "dplr_from_normal_plus_low_rank",
                   "symmetric part");
  EXPECT_SSM_ERROR(dplr_from_normal_plus_low_rank(A, random({1, 5}), B), "'P'", "(1, 5)");
  // FouT's skew part has a zero eigenvalue: no conjugate partner.
  HippoMatrices f = hippo(HippoMeasure::FouT, 8);
  EXPECT_SSM_ERROR(dplr_from_normal_plus_low_rank(f.A, f.P, f.B), "eigenvalue", "conjugate");
}

// ---- perturb-then-diagonalise (PTD) -------------------------------------------------------

namespace {

using CMat = std::vector<complexd>;  // row-major

// σ_max of a complex (rows, cols) matrix by power iteration on M*M (plain loops).
double sigma_max(const CMat& M, int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<double> init = random({cols}, DType::F64, seed).to_vector();
  CMat x(init.begin(), init.end()), y(rows);
  double sigma = 0;
  for (int it = 0; it < 3000; ++it) {
    for (int64_t i = 0; i < rows; ++i) {
      y[i] = 0;
      for (int64_t j = 0; j < cols; ++j) y[i] += M[i * cols + j] * x[j];
    }
    double ny = 0, nx = 0;
    for (const complexd& v : y) ny += std::norm(v);
    for (const complexd& v : x) nx += std::norm(v);
    sigma = std::sqrt(ny / nx);
    for (int64_t j = 0; j < cols; ++j) {
      x[j] = 0;
      for (int64_t i = 0; i < rows; ++i) x[j] += std::conj(M[i * cols + j]) * y[i];
    }
    double n = 0;
    for (const complexd& v : x) n += std::norm(v);
    for (complexd& v : x) v /= std::sqrt(n);
  }
  return sigma;
}

// The full V (n, n) = [V_h, conj of its pair columns] and V⁻¹ (rows of W_h, real ones
// un-halved, then the conjugates of the pair rows) of a PTD result, and the n eigenvalues.
struct FullBasis {
  CMat V, W;
  std::vector<complexd> lambda;
};
FullBasis full_basis(const PTD& p) {
  const int64_t n = p.n, half = p.N / 2;
  FullBasis f{CMat(n * n), CMat(n * n), p.lambda};
  int64_t col = half;
  for (int64_t j = 0; j < half; ++j) {
    const bool pair = p.lambda[j].imag() < 0;
    for (int64_t i = 0; i < n; ++i) {
      f.V[i * n + j] = p.V[i * half + j];
      f.W[j * n + i] = (pair ? 1.0 : 2.0) * p.W[j * n + i];
      if (pair) {
        f.V[i * n + col] = std::conj(p.V[i * half + j]);
        f.W[col * n + i] = std::conj(p.W[j * n + i]);
      }
    }
    if (pair) {
      f.lambda.push_back(std::conj(p.lambda[j]));
      ++col;
    }
  }
  EXPECT_EQ(col, n);
  return f;
}

// ‖V diag(λ) V⁻¹ − M‖_F / ‖ref‖_F for a full (N, N) V, V⁻¹ and N eigenvalues.
double reconstruction_error(const CMat& V, const std::vector<complexd>& lambda, const CMat& W,
                            const Mat& M, const Mat& ref, int64_t N) {
  Mat R(N * N);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t k = 0; k < N; ++k) {
      complexd s = 0;
      for (int64_t j = 0; j < N; ++j) s += V[i * N + j] * lambda[j] * W[j * N + k];
      R[i * N + k] = s.real();
    }
  double d = 0;
  for (int64_t i = 0; i < N * N; ++i) d += (R[i] - M[i]) * (R[i] - M[i]);
  return std::sqrt(d) / frob(ref);
}

}  // namespace

TEST(HippoPTD, DiagonalisesTheFullLegSPlusEOfTheChosenSpectralNorm) {
  // The reconstruction's floor is ε·cond(V)·‖A‖ (backward-stable eigenvectors, then V⁻¹):
  // these cases keep cond(V) ≲ 2e4, so 1e-10 holds with margin (N = 64 at ‖E‖₂ = 0.1 has
  // cond(V) ≈ 1e5 and an error of ~2e-10).
  const std::pair<int64_t, double> cases[] = {{2, 0.1}, {16, 0.01}, {16, 0.1}, {64, 1.0}};
  for (auto [N, eps] : cases) {
    {
      SCOPED_TRACE(std::to_string(N) + " eps " + std::to_string(eps));
      const int64_t half = N / 2;
      const PTD p = hippo_ptd(N, eps, /*seed=*/11);
      const int64_t n = p.n;
      ASSERT_EQ(static_cast<int64_t>(p.lambda.size()), half);
      EXPECT_GE(p.draws, 1);
      // p pairs and r reals fill the N/2 slots: n = 2p + r, N = 2p + 2r.
      int64_t reals = 0;
      for (const complexd& l : p.lambda) reals += l.imag() == 0;
      EXPECT_EQ(reals, p.real_modes);
      EXPECT_EQ(n + reals, N);
      // The matrix diagonalised is the full (non-normal) LegS plus E, exactly.
      const Mat A = to_mat(hippo(HippoMeasure::LegS, n).A), E = to_mat(p.E), M = to_mat(p.A);
      for (int64_t i = 0; i < n * n; ++i) ASSERT_EQ(M[i], A[i] + E[i]) << i;
      // ‖E‖₂ (power iteration, independent of the code's Gram-matrix solve) is the chosen norm.
      const CMat Ec(E.begin(), E.end());
      EXPECT_NEAR(sigma_max(Ec, n, n, 3), eps, 1e-9 * eps);
      // A + E = 2·Re(V_h Λ_h W_h) from the slots alone.
      Mat R(n * n);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < n; ++k) {
          complexd s = 0;
          for (int64_t j = 0; j < half; ++j) s += p.V[i * half + j] * p.lambda[j] * p.W[j * n + k];
          R[i * n + k] = 2 * s.real();
        }
      double d = 0;
      for (int64_t i = 0; i < n * n; ++i) d += (R[i] - M[i]) * (R[i] - M[i]);
      EXPECT_LE(std::sqrt(d) / frob(A), 1e-10);
      // The full W is V⁻¹: W V = I (so conj(W_pair) V_h = 0 too).
      const FullBasis f = full_basis(p);
      double inv_err = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < n; ++k) {
          complexd s = 0;
          for (int64_t j = 0; j < n; ++j) s += f.W[i * n + j] * f.V[j * n + k];
          inv_err = std::max(inv_err, std::abs(s - complexd(i == k ? 1.0 : 0.0)));
        }
      EXPECT_LE(inv_err, 1e-9);
      // Each slot solves (A + E) v = λ v; Λ is stable, Im ≤ 0, by |Im| ascending.
      for (int64_t j = 0; j < half; ++j) {
        double res = 0, vnorm = 0;
        for (int64_t i = 0; i < n; ++i) {
          complexd s = 0;
          for (int64_t k = 0; k < n; ++k) s += M[i * n + k] * p.V[k * half + j];
          res += std::norm(s - p.lambda[j] * p.V[i * half + j]);
          vnorm += std::norm(p.V[i * half + j]);
        }
        EXPECT_NEAR(vnorm, 1.0, 1e-12) << j;
        EXPECT_LE(std::sqrt(res), 1e-11 * frob(A)) << j;
        EXPECT_LT(p.lambda[j].real(), 0.0) << j;
        EXPECT_LE(p.lambda[j].imag(), 0.0) << j;
        if (j > 0) {
          EXPECT_GE(std::abs(p.lambda[j].imag()), std::abs(p.lambda[j - 1].imag()));
        }
      }
      // B̃ = W_h B.
      const std::vector<double> B = hippo(HippoMeasure::LegS, n).B.to_vector();
      for (int64_t j = 0; j < half; ++j) {
        complexd s = 0;
        for (int64_t i = 0; i < n; ++i) s += p.W[j * n + i] * B[i];
        EXPECT_LE(std::abs(s - p.B[j]), 1e-12 * std::abs(s)) << j;
      }
      // cond_V = σ_max(V)·σ_max(V⁻¹).
      EXPECT_NEAR(p.cond_V, sigma_max(f.V, n, n, 4) * sigma_max(f.W, n, n, 5), 1e-3 * p.cond_V);
    }
  }
}

TEST(HippoPTD, PerturbationMakesTheEigenbasisWellConditioned) {
  // LegS itself is diagonalisable (distinct eigenvalues −1 … −N) but its eigenvector matrix
  // is numerically singular at N = 64: cond(V)·ε > 1, and V Λ V⁻¹ does not even return A.
  // After PTD (‖E‖₂ = 1), cond(V)·ε leaves ≥ 6 correct digits and V Λ V⁻¹ = A + E.
  const int64_t N = 64;
  const double eps_machine = std::numeric_limits<double>::epsilon();
  const Tensor A = hippo(HippoMeasure::LegS, N).A;
  const Mat Am = to_mat(A);
  const Eigendecomposition raw = eigendecompose(A);
  const PTD p = hippo_ptd(N, 1.0, /*seed=*/21);
  EXPECT_GT(raw.cond_V * eps_machine, 1.0);
  EXPECT_LT(p.cond_V * eps_machine, 1e-6);
  EXPECT_GT(raw.cond_V, 1e6 * p.cond_V);
  // (NaN counts as failing too: V is singular in working precision.)
  EXPECT_FALSE(reconstruction_error(raw.V, raw.lambda, raw.V_inv, Am, Am, N) <= 1e-3);
  const FullBasis f = full_basis(p);
  EXPECT_LE(reconstruction_error(f.V, f.lambda, f.W, to_mat(p.A),
                                 to_mat(hippo(HippoMeasure::LegS, p.n).A), p.n),
            1e-10);
  // A smaller perturbation leaves V worse conditioned (the trade-off PTD tunes).
  EXPECT_GT(hippo_ptd(N, 0.1, 21).cond_V, p.cond_V);
}

TEST(HippoPTD, SeedDeterminesThePerturbation) {
  const int64_t N = 16;
  const PTD a = hippo_ptd(N, 0.1, 5), again = hippo_ptd(N, 0.1, 5), other = hippo_ptd(N, 0.1, 6);
  const Mat ea = to_mat(a.E), eb = to_mat(again.E), eo = to_mat(other.E);
  EXPECT_EQ(ea, eb);
  EXPECT_EQ(a.lambda, again.lambda);
  EXPECT_EQ(a.B, again.B);
  double diff = 0;
  for (size_t i = 0; i < ea.size(); ++i) diff = std::max(diff, std::abs(ea[i] - eo[i]));
  EXPECT_GT(diff, 1e-3 * 0.1);
  EXPECT_NE(a.lambda, other.lambda);
}

TEST(HippoPTD, S4DInitLegSPTDIsTheKeptHalf) {
  const int64_t N = 16;
  const PTD p = hippo_ptd(N, 0.2, 9);
  const DiagonalInit d = s4d_init(S4DInit::LegSPTD, N, 0.2, 9);
  EXPECT_EQ(d.A, p.lambda);
  EXPECT_EQ(d.B, p.B);
  EXPECT_EQ(d.V, p.V);
  EXPECT_TRUE(s4d_init(S4DInit::LegS, N).V.empty());
  EXPECT_EQ(s4d_init_from_name("legs-ptd"), S4DInit::LegSPTD);
  EXPECT_STREQ(s4d_init_name(S4DInit::LegSPTD), "legs-ptd");
}

TEST(HippoPTD, BadInputsAreRejected) {
  EXPECT_SSM_ERROR(hippo_ptd(16, 0.0), "hippo_ptd", "perturbation_norm", "> 0", "0");
  EXPECT_SSM_ERROR(hippo_ptd(16, -0.5), "hippo_ptd", "perturbation_norm", "-0.5");
  EXPECT_SSM_ERROR(hippo_ptd(15, 0.1), "hippo_ptd", "'N'", "even", "15");
  EXPECT_SSM_ERROR(s4d_init(S4DInit::LegSPTD, 8, 0.0), "hippo_ptd", "perturbation_norm");
  EXPECT_SSM_ERROR(s4d_init(S4DInit::LegS, 8, 0.1), "perturbation_norm", "legs-ptd", "legs");
  EXPECT_SSM_ERROR(eigendecompose(random({3, 4}, DType::F64, 1)), "eigendecompose", "(3, 4)");
}
