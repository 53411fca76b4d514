// HiPPO matrices (from the defining equations, DESIGN §5) and their normal-plus-low-rank /
// DPLR decomposition with Eigen. The eigenproblem is posed on the Hermitian matrix −i·S_skew
// rather than on A itself: A (e.g. LegS, lower triangular) is far from normal and its own
// eigenvectors are exponentially ill-conditioned, while a Hermitian eigensolver returns a
// unitary basis to machine precision.
#include "ssm/nn/hippo.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numbers>

#include "ssm/core/rng.h"

namespace ssm::nn {

namespace {

using Eigen::MatrixXcd;
using Eigen::MatrixXd;

void check_state_size(const char* op, int64_t N, bool need_even) {
  SSM_CHECK(N >= 1, "{}: argument 'N' expected a state size >= 1, got {}", op, N);
  SSM_CHECK(!need_even || N % 2 == 0,
            "{}: argument 'N' must be even (conjugate-pair layout keeps N/2 complex modes), got {}",
            op, N);
}

MatrixXd to_eigen(const Tensor& t) {
  Tensor c = t.contiguous();
  const int64_t rows = c.size(0), cols = c.dim() == 2 ? c.size(1) : 1;
  MatrixXd m(rows, cols);
  const double* p = c.data<double>();
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) m(i, j) = p[i * cols + j];
  return m;
}

Tensor from_eigen(const MatrixXd& m, const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::F64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < m.rows(); ++i)
    for (int64_t j = 0; j < m.cols(); ++j) p[i * m.cols() + j] = m(i, j);
  return t;
}

// LegS: A_nk = −√(2n+1)√(2k+1) (n > k), −(n+1) (n = k), 0 (n < k); B_n = √(2n+1);
// P_n = √(n + ½) makes A + PPᵀ = −½I + skew.
HippoMatrices hippo_legs(int64_t N) {
  MatrixXd A = MatrixXd::Zero(N, N), B(N, 1), P(1, N);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < n; ++k) A(n, k) = -std::sqrt(2.0 * n + 1) * std::sqrt(2.0 * k + 1);
    A(n, n) = -(n + 1.0);
    B(n, 0) = std::sqrt(2.0 * n + 1);
    P(0, n) = std::sqrt(n + 0.5);
  }
  return {from_eigen(A, {N, N}), from_eigen(B, {N}), from_eigen(P, {1, N})};
}

// LegT (window θ = 1) in the orthonormal basis √(2n+1)·Pₙ: with R_n = √(2n+1),
// A_nk = −R_n R_k·((−1)^(n−k) for k ≤ n, 1 for k > n), B_n = R_n (−1)^n.
// The sign pattern splits as ½(ssᵀ + 11ᵀ) + skew (s_n = (−1)^n), so with
// P₁ = R/√2, P₂ = R⊙s/√2 the sum A + P₁P₁ᵀ + P₂P₂ᵀ is skew-symmetric.
HippoMatrices hippo_legt(int64_t N) {
  MatrixXd A(N, N), B(N, 1), P(2, N);
  for (int64_t n = 0; n < N; ++n) {
    const double rn = std::sqrt(2.0 * n + 1), sn = (n % 2 == 0) ? 1.0 : -1.0;
    for (int64_t k = 0; k < N; ++k) {
      const double rk = std::sqrt(2.0 * k + 1);
      const double sign = (k <= n) ? (((n - k) % 2 == 0) ? 1.0 : -1.0) : 1.0;
      A(n, k) = -rn * rk * sign;
    }
    B(n, 0) = rn * sn;
    P(0, n) = rn / std::sqrt(2.0);
    P(1, n) = rn * sn / std::sqrt(2.0);
  }
  return {from_eigen(A, {N, N}), from_eigen(B, {N}), from_eigen(P, {2, N})};
}

// FouT (window 1): basis g₀ = 1, g_{2k−1} = √2 cos 2πks, g_{2k} = √2 sin 2πks on s ∈ [0, 1].
// Differentiating the windowed projection gives c' = J c + B (u(t) − u(t−1)) with the
// rotation generator J (J_{2k−1,2k} = 2πk = −J_{2k,2k−1}) and B = g(0) = g(1) = (1, √2, 0, √2,
// 0, …); approximating u(t−1) by the reconstruction Bᵀc yields A = J − BBᵀ.
HippoMatrices hippo_fout(int64_t N) {
  MatrixXd A = MatrixXd::Zero(N, N), B = MatrixXd::Zero(N, 1);
  B(0, 0) = 1.0;
  for (int64_t k = 1; 2 * k - 1 < N; ++k) {
    B(2 * k - 1, 0) = std::sqrt(2.0);
    if (2 * k < N) {
      A(2 * k - 1, 2 * k) = 2 * std::numbers::pi * k;
      A(2 * k, 2 * k - 1) = -2 * std::numbers::pi * k;
    }
  }
  A -= B * B.transpose();
  return {from_eigen(A, {N, N}), from_eigen(B, {N}), from_eigen(B.transpose(), {1, N})};
}

}  // namespace

HippoMeasure hippo_measure_from_name(const std::string& name) {
  if (name == "legs") return HippoMeasure::LegS;
  if (name == "legt") return HippoMeasure::LegT;
  if (name == "fout") return HippoMeasure::FouT;
  SSM_FAIL("hippo: argument 'measure' expected one of legs, legt, fout, got '{}'", name);
}

const char* hippo_measure_name(HippoMeasure m) {
  switch (m) {
    case HippoMeasure::LegS:
      return "legs";
    case HippoMeasure::LegT:
      return "legt";
    case HippoMeasure::FouT:
      return "fout";
  }
  return "?";
}

HippoMatrices hippo(HippoMeasure measure, int64_t N) {
  check_state_size("hippo", N, /*need_even=*/false);
  switch (measure) {
    case HippoMeasure::LegS:
      return hippo_legs(N);
    case HippoMeasure::LegT:
      return hippo_legt(N);
    case HippoMeasure::FouT:
      return hippo_fout(N);
  }
  SSM_FAIL("hippo: unknown measure {}", static_cast<int>(measure));
}

DPLR dplr_from_normal_plus_low_rank(const Tensor& A_t, const Tensor& P_t, const Tensor& B_t) {
  const char* op = "dplr_from_normal_plus_low_rank";
  SSM_CHECK(A_t.dtype() == DType::F64 && A_t.dim() == 2 && A_t.size(0) == A_t.size(1),
            "{}: argument 'A' expected a square float64 matrix (N, N), got {} {}", op,
            dtype_name(A_t.dtype()), shape_str(A_t.shape()));
  const int64_t N = A_t.size(0);
  check_state_size(op, N, /*need_even=*/true);
  SSM_CHECK(P_t.dtype() == DType::F64 && P_t.dim() == 2 && P_t.size(1) == N && P_t.size(0) >= 1,
            "{}: argument 'P' expected float64 (rank, N) with N = {}, got {} {}", op, N,
            dtype_name(P_t.dtype()), shape_str(P_t.shape()));
  SSM_CHECK(B_t.dtype() == DType::F64 && B_t.dim() == 1 && B_t.size(0) == N,
            "{}: argument 'B' expected float64 ({}), got {} {}", op, N, dtype_name(B_t.dtype()),
            shape_str(B_t.shape()));
  const MatrixXd A = to_eigen(A_t), P = to_eigen(P_t).transpose(), B = to_eigen(B_t);
  const int64_t rank = P.cols();

  // S = A + PPᵀ must be c·I + skew for its eigenbasis to be unitary with Re Λ = c.
  const MatrixXd S = A + P * P.transpose();
  const double c = S.diagonal().mean();
  const MatrixXd sym = 0.5 * (S + S.transpose()) - c * MatrixXd::Identity(N, N);
  const double scale = std::max(S.norm(), 1.0);
  SSM_CHECK(sym.norm() <= 1e-9 * scale,
            "{}: A + PPᵀ expected symmetric part c·I (normal), got a deviation of {:.3e} "
            "(relative to ‖S‖ = {:.3e})",
            op, sym.norm(), scale);
  const MatrixXd skew = 0.5 * (S - S.transpose());

  // −i·skew is Hermitian with real eigenvalues μ in ± pairs; the eigenvector of −μ is the
  // conjugate of that of μ, so the μ < 0 half determines the whole basis.
  const MatrixXcd herm = complexd(0, -1) * skew.cast<complexd>();
  Eigen::SelfAdjointEigenSolver<MatrixXcd> solver(herm);
  SSM_CHECK(solver.info() == Eigen::Success, "{}: the Hermitian eigensolver did not converge", op);
  const Eigen::VectorXd mu = solver.eigenvalues();  // ascending
  const MatrixXcd& vecs = solver.eigenvectors();
  const int64_t half = N / 2;
  const double gap_tol = 1e-9 * scale;
  SSM_CHECK(mu(half - 1) < -gap_tol && mu(half) > gap_tol,
            "{}: A + PPᵀ has an eigenvalue with imaginary part {:.3e} ≈ 0, which has no "
            "conjugate partner (expected all |Im λ| > {:.1e})",
            op, std::min(std::abs(mu(half - 1)), std::abs(mu(half))), gap_tol);

  DPLR out;
  out.N = N;
  out.rank = rank;
  out.A = from_eigen(A, {N, N});
  out.lambda.resize(half);
  out.P.resize(rank * half);
  out.B.resize(half);
  out.V.resize(N * half);
  // Columns 0..half−1 hold μ ascending (most negative first); store them by |μ| ascending.
  for (int64_t j = 0; j < half; ++j) {
    const int64_t src = half - 1 - j;
    out.lambda[j] = complexd(c, mu(src));
    const Eigen::VectorXcd v = vecs.col(src);
    for (int64_t i = 0; i < N; ++i) out.V[i * half + j] = v(i);
    out.B[j] = v.dot(B.col(0).cast<complexd>());  // Eigen's dot conjugates the first operand
    for (int64_t r = 0; r < rank; ++r) out.P[r * half + j] = v.dot(P.col(r).cast<complexd>());
  }
  return out;
}

DPLR hippo_dplr(HippoMeasure measure, int64_t N, double perturbation_norm, uint64_t seed) {
  check_state_size("hippo_dplr", N, /*need_even=*/true);
  SSM_CHECK(measure != HippoMeasure::FouT,
            "hippo_dplr: argument 'measure' fout has no DPLR form (its skew part has a zero "
            "eigenvalue); expected legs or legt");
  SSM_CHECK(std::isfinite(perturbation_norm) && perturbation_norm >= 0,
            "hippo_dplr: argument 'perturbation_norm' expected a finite value >= 0, got {}",
            perturbation_norm);
  HippoMatrices h = hippo(measure, N);
  if (perturbation_norm > 0) {
    Generator gen(seed);
    MatrixXd G(N, N);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) G(i, j) = gen.normal();
    MatrixXd E = G - G.transpose();
    E *= perturbation_norm / E.norm();
    h.A = from_eigen(to_eigen(h.A) + E, {N, N});
  }
  return dplr_from_normal_plus_low_rank(h.A, h.P, h.B);
}

namespace {

// One draw of PTD at size n: M = LegS(n) + E with E = G·norm/‖G‖₂, G i.i.d. standard normal.
struct PtdDraw {
  MatrixXd M;
  int64_t real_eigenvalues = 0;
  bool usable = false;  // every Re λ < 0, and no pair so close to the real axis that it is
                        // numerically a double real eigenvalue (nearly parallel eigenvectors)
};

PtdDraw draw_perturbed_legs(int64_t n, double norm, Generator& gen) {
  MatrixXd E(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) E(i, j) = gen.normal();
  // ‖G‖₂² is the largest eigenvalue of GᵀG (a symmetric solve: relative accuracy ε).
  Eigen::SelfAdjointEigenSolver<MatrixXd> gram(E.transpose() * E, Eigen::EigenvaluesOnly);
  E *= norm / std::sqrt(gram.eigenvalues()(n - 1));
  PtdDraw d;
  d.M = to_eigen(hippo(HippoMeasure::LegS, n).A) + E;
  Eigen::EigenSolver<MatrixXd> solver(d.M, /*computeEigenvectors=*/false);
  if (solver.info() != Eigen::Success) return d;
  const double tol = 1e-8 * d.M.norm();
  d.usable = true;
  for (const complexd& l : solver.eigenvalues()) {
    // The real-Schur solver returns real eigenvalues (1×1 blocks) with Im exactly 0.
    if (l.imag() == 0) ++d.real_eigenvalues;
    if (!(l.real() < 0) || (l.imag() != 0 && std::abs(l.imag()) <= tol)) d.usable = false;
  }
  return d;
}

double condition_number(const MatrixXcd& V) {
  Eigen::BDCSVD<MatrixXcd> svd(V);  // singular values only
  const Eigen::VectorXd& s = svd.singularValues();
  return s(0) / s(s.size() - 1);
}

MatrixXcd unit_columns(MatrixXcd V) {
  for (int64_t j = 0; j < V.cols(); ++j) V.col(j).normalize();
  return V;
}

}  // namespace

Eigendecomposition eigendecompose(const Tensor& M_t) {
  const char* op = "eigendecompose";
  SSM_CHECK(M_t.dtype() == DType::F64 && M_t.dim() == 2 && M_t.size(0) == M_t.size(1),
            "{}: argument 'M' expected a square float64 matrix (N, N), got {} {}", op,
            dtype_name(M_t.dtype()), shape_str(M_t.shape()));
  const int64_t N = M_t.size(0);
  Eigen::EigenSolver<MatrixXd> solver(to_eigen(M_t));
  SSM_CHECK(solver.info() == Eigen::Success, "{}: the eigensolver did not converge", op);
  const MatrixXcd V = unit_columns(solver.eigenvectors());
  Eigendecomposition out;
  out.N = N;
  out.cond_V = condition_number(V);
  const MatrixXcd V_inv = V.partialPivLu().inverse();
  out.lambda.assign(solver.eigenvalues().data(), solver.eigenvalues().data() + N);
  out.V.resize(N * N);
  out.V_inv.resize(N * N);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) {
      out.V[i * N + j] = V(i, j);
      out.V_inv[i * N + j] = V_inv(i, j);
    }
  return out;
}

PTD hippo_ptd(int64_t N, double perturbation_norm, uint64_t seed) {
  check_state_size("hippo_ptd", N, /*need_even=*/true);
  SSM_CHECK(std::isfinite(perturbation_norm) && perturbation_norm > 0,
            "hippo_ptd: argument 'perturbation_norm' expected a finite value > 0 (the spectral "
            "norm of E), got {}",
            perturbation_norm);
  const int64_t half = N / 2;
  Generator gen(seed);
  PTD out;
  out.N = N;
  out.perturbation_norm = perturbation_norm;
  int64_t n = N;
  MatrixXd M;
  for (;;) {
    SSM_CHECK(out.draws < kMaxPtdDraws,
              "hippo_ptd: none of {} draws of E (‖E‖₂ = {}, N = {}) gave a stable A + E that "
              "fills the {} slots; try another perturbation_norm",
              kMaxPtdDraws, perturbation_norm, N, half);
    ++out.draws;
    const PtdDraw d = draw_perturbed_legs(n, perturbation_norm, gen);
    if (!d.usable) continue;  // unstable or nearly defective: redraw at this size
    if ((n + d.real_eigenvalues) / 2 == half) {
      M = d.M;
      out.real_modes = d.real_eigenvalues;
      break;
    }
    // r real eigenvalues need r slots: try the size whose pairs and reals would fill N/2.
    n = std::max<int64_t>(1, N - d.real_eigenvalues);
  }
  out.n = n;
  const HippoMatrices h = hippo(HippoMeasure::LegS, n);
  const MatrixXd B = to_eigen(h.B);
  Eigen::EigenSolver<MatrixXd> solver(M);
  SSM_CHECK(solver.info() == Eigen::Success, "hippo_ptd: the eigensolver did not converge");
  // Slots: the Im λ < 0 member of each pair and every real λ, by |Im| ascending (reals first,
  // slowest first). V = [V_h, conj V_pairs] is built from the kept half, so the partners are
  // exact conjugates.
  std::vector<int64_t> kept;
  for (int64_t j = 0; j < n; ++j)
    if (solver.eigenvalues()(j).imag() <= 0) kept.push_back(j);
  SSM_CHECK(static_cast<int64_t>(kept.size()) == half, "hippo_ptd: expected {} slots, got {}", half,
            kept.size());
  const auto& ev = solver.eigenvalues();
  std::stable_sort(kept.begin(), kept.end(), [&](int64_t a, int64_t b) {
    if (std::abs(ev(a).imag()) != std::abs(ev(b).imag()))
      return std::abs(ev(a).imag()) < std::abs(ev(b).imag());
    return ev(a).real() > ev(b).real();
  });
  MatrixXcd V(n, n);
  for (int64_t j = 0, pair = 0; j < half; ++j) {
    V.col(j) = solver.eigenvectors().col(kept[j]).normalized();
    if (ev(kept[j]).imag() < 0) V.col(half + pair++) = V.col(j).conjugate();
  }
  const MatrixXcd Vinv = V.partialPivLu().inverse();
  out.cond_V = condition_number(V);
  out.E = from_eigen(M - to_eigen(h.A), {n, n});
  out.A = from_eigen(M, {n, n});
  out.lambda.resize(half);
  out.V.resize(n * half);
  out.W.resize(half * n);
  out.B.resize(half);
  for (int64_t j = 0; j < half; ++j) {
    out.lambda[j] = ev(kept[j]);
    // A real mode is counted once, not as a pair: halve its row so that 2·Re(·) is exact.
    const double scale = ev(kept[j]).imag() < 0 ? 1.0 : 0.5;
    complexd b = 0;
    for (int64_t i = 0; i < n; ++i) {
      out.V[i * half + j] = V(i, j);
      out.W[j * n + i] = scale * Vinv(j, i);
      b += out.W[j * n + i] * B(i, 0);
    }
    out.B[j] = b;
  }
  return out;
}

S4DInit s4d_init_from_name(const std::string& name) {
  if (name == "lin") return S4DInit::Lin;
  if (name == "inv") return S4DInit::Inv;
  if (name == "real") return S4DInit::Real;
  if (name == "legs") return S4DInit::LegS;
  if (name == "legs-ptd") return S4DInit::LegSPTD;
  SSM_FAIL("s4d_init: argument 'init' expected one of lin, inv, real, legs, legs-ptd, got '{}'",
           name);
}

const char* s4d_init_name(S4DInit init) {
  switch (init) {
    case S4DInit::Lin:
      return "lin";
    case S4DInit::Inv:
      return "inv";
    case S4DInit::Real:
      return "real";
    case S4DInit::LegS:
      return "legs";
    case S4DInit::LegSPTD:
      return "legs-ptd";
  }
  return "?";
}

DiagonalInit s4d_init(S4DInit init, int64_t N, double perturbation_norm, uint64_t seed) {
  check_state_size("s4d_init", N, /*need_even=*/true);
  SSM_CHECK(init == S4DInit::LegSPTD || perturbation_norm == 0,
            "s4d_init: argument 'perturbation_norm' applies only to init legs-ptd, got {} for {}",
            perturbation_norm, s4d_init_name(init));
  const int64_t half = N / 2;
  DiagonalInit out;
  if (init == S4DInit::LegS) {
    DPLR d = hippo_dplr(HippoMeasure::LegS, N);
    out.A = std::move(d.lambda);
    out.B = std::move(d.B);
    return out;
  }
  if (init == S4DInit::LegSPTD) {
    PTD p = hippo_ptd(N, perturbation_norm, seed);
    out.A = std::move(p.lambda);
    out.B = std::move(p.B);
    out.V = std::move(p.V);
    return out;
  }
  const double pi = std::numbers::pi, Nd = static_cast<double>(N);
  out.A.resize(half);
  out.B.assign(half, complexd(1.0, 0.0));
  for (int64_t n = 0; n < half; ++n) {
    switch (init) {
      case S4DInit::Lin:
        out.A[n] = complexd(-0.5, pi * n);
        break;
      case S4DInit::Inv:
        out.A[n] = complexd(-0.5, Nd / pi * (Nd / (2.0 * n + 1) - 1));
        break;
      case S4DInit::Real:
        out.A[n] = complexd(-(n + 1.0), 0.0);
        break;
      case S4DInit::LegS:
      case S4DInit::LegSPTD:
        break;  // handled above
    }
  }
  return out;
}

}  // namespace ssm::nn
