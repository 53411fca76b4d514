// s4_kernel op: the DPLR generating function at the roots of unity (Cauchy sums + Woodbury
// correction), an inverse real DFT, and the hand-written backward of all three.
//
// Frequencies. ω_k = e^{−iθ_k}, θ_k = 2πk/L. Then z_k = (2/Δ)·i·tan(θ_k/2) and
// 2/(1 + ω_k) = e^{iθ_k/2}/cos(θ_k/2), both computed from θ directly (no cancellation in 1 + ω).
// At the Nyquist frequency (L even, θ = π) z is infinite; there the limit is exact:
// 2/(1+ω)·(z − A)⁻¹ → (Δ/2)·I and the low-rank term vanishes, so K̂ = Δ·Re Σ_n C̃_n B_n.
// The Cauchy kernel therefore runs on the Kc = ⌈L/2⌉ frequencies 0 ≤ θ < π only.
//
// Woodbury at each frequency, with a = r_{C̃B}, b_i = r_{C̃P_i}, c_j = r_{P_j*B},
// D_ij = r_{P_i*P_j}, M = (I + D)⁻¹ and s = 2/(1+ω):  K̂ = s·(a − Σ_ij b_i M_ij c_j).
// Its derivatives: ∂K̂/∂a = s, ∂K̂/∂b_i = −s(Mc)_i, ∂K̂/∂c_j = −s(Mᵀb)_j,
// ∂K̂/∂D_ij = s(Mᵀb)_i(Mc)_j (from dM = −M dD M). K̂ is holomorphic in all of them, so the
// gradient of each is ∂ℒ/∂K̂ · conj(∂K̂/∂·) (gradients of complex values: ∂ℒ/∂Re + i∂ℒ/∂Im).
//
// Inverse DFT. K_l = (1/L)·Σ_{k<L} K̂_k e^{2πikl/L} with K̂_{L−k} = conj(K̂_k); only Re K̂_0 and
// Re K̂_{L/2} count. Backward: ∂ℒ/∂K̂_k = (c_k/L)·Σ_l g_l e^{−2πikl/L} with c_k = 1 for k = 0 and
// the Nyquist bin, else 2 (each of those bins also stands for its mirror).
#include "ssm/ops/s4_kernel.h"

#include <cmath>
#include <complex>
#include <kissfft/kissfft.hh>
#include <numbers>
#include <vector>

#include "ops/s4_inputs.h"
#include "ssm/autograd/node.h"
#include "ssm/kernels/cauchy.h"

namespace ssm {

namespace detail {

void check_s4_params(const S4Params& p, int64_t L, const char* op) {
  const std::pair<const Tensor*, const char*> all[] = {
      {&p.log_dt, "log_dt"}, {&p.Lambda_re, "Lambda_re"}, {&p.Lambda_im, "Lambda_im"},
      {&p.P_re, "P_re"},     {&p.P_im, "P_im"},           {&p.B_re, "B_re"},
      {&p.B_im, "B_im"},     {&p.C_re, "C_re"},           {&p.C_im, "C_im"}};
  const bool with_B = p.B_re.defined() || p.B_im.defined();
  for (auto [t, name] : all) {
    if (!with_B && (t == &p.B_re || t == &p.B_im)) continue;
    SSM_CHECK(t->defined(), "{}: argument '{}' is undefined", op, name);
    SSM_CHECK(t->device() == Device::CPU, "{}: argument '{}' expected a CPU tensor, got {}", op,
              name, device_name(t->device()));
    SSM_CHECK(is_floating(t->dtype()) && t->dtype() == p.log_dt.dtype(),
              "{}: argument '{}' expected dtype {} (that of log_dt, float32 or float64), got {}",
              op, name, dtype_name(p.log_dt.dtype()), dtype_name(t->dtype()));
  }
  SSM_CHECK(p.log_dt.dim() == 1 && p.log_dt.size(0) >= 1,
            "{}: argument 'log_dt' expected shape (H), got {}", op, shape_str(p.log_dt.shape()));
  const int64_t H = p.log_dt.size(0);
  const Shape& modes = p.Lambda_re.shape();
  SSM_CHECK(modes.size() == 2 && modes[0] == H && modes[1] >= 1,
            "{}: argument 'Lambda_re' expected shape (H, N/2) with H = {}, got {}", op, H,
            shape_str(modes));
  for (auto [t, name] : all) {
    if (t == &p.log_dt || t == &p.Lambda_re || t == &p.P_re || t == &p.P_im) continue;
    if (!with_B && (t == &p.B_re || t == &p.B_im)) continue;
    SSM_CHECK(t->shape() == modes,
              "{}: argument '{}' expected shape (H, N/2) = {} like Lambda_re, got {}", op, name,
              shape_str(modes), shape_str(t->shape()));
  }
  const Shape& ps = p.P_re.shape();
  SSM_CHECK(ps.size() == 3 && (ps[0] == 1 || ps[0] == 2) && ps[1] == H && ps[2] == modes[1],
            "{}: argument 'P_re' expected shape (R, H, N/2) with R = 1 or 2 and (H, N/2) = {}, "
            "got {}",
            op, shape_str(modes), shape_str(ps));
  SSM_CHECK(p.P_im.shape() == ps, "{}: argument 'P_im' expected shape {} like P_re, got {}", op,
            shape_str(ps), shape_str(p.P_im.shape()));
  SSM_CHECK(L >= 1, "{}: argument 'L' expected a kernel length >= 1, got {}", op, L);
}

S4Params contiguous_detached(const S4Params& p) {
  auto cd = [](const Tensor& t) { return t.defined() ? t.contiguous().detach() : Tensor(); };
  return {cd(p.log_dt), cd(p.Lambda_re), cd(p.Lambda_im), cd(p.P_re), cd(p.P_im),
          cd(p.B_re),   cd(p.B_im),      cd(p.C_re),      cd(p.C_im)};
}

}  // namespace detail

namespace {

using complexd = std::complex<double>;
using detail::S4Params;
using kernels::cpu::CauchyInputs;
using kernels::cpu::CauchyOutput;

// Where each product x·y sits among the M = 1 + 2R + R² Cauchy vectors.
struct VectorLayout {
  int64_t R;
  int64_t count() const { return 1 + 2 * R + R * R; }
  int64_t CB() const { return 0; }
  int64_t CP(int64_t i) const { return 1 + i; }
  int64_t PP(int64_t i, int64_t j) const { return 1 + R + i * R + j; }  // conj(P_i)·P_j
  int64_t PB(int64_t j) const { return 1 + R + R * R + j; }             // conj(P_j)·B
};

// Sizes and the frequency grid.
struct Grid {
  int64_t H, N, R, L, Kc;        // Kc: frequencies with θ < π
  bool nyquist;                  // L even: the θ = π bin is handled in closed form
  std::vector<double> tan_half;  // tan(θ_k/2), k < Kc
  std::vector<complexd> s;       // 2/(1 + ω_k) = e^{iθ_k/2}/cos(θ_k/2)
  Grid(const S4Params& p, int64_t L_)
      : H(p.log_dt.size(0)),
        N(p.Lambda_re.size(1)),
        R(p.P_re.size(0)),
        L(L_),
        Kc((L_ + 1) / 2),
        nyquist(L_ % 2 == 0),
        tan_half(Kc),
        s(Kc) {
    for (int64_t k = 0; k < Kc; ++k) {
      const double half = std::numbers::pi * static_cast<double>(k) / static_cast<double>(L);
      tan_half[k] = std::tan(half);
      s[k] = complexd(std::cos(half), std::sin(half)) / std::cos(half);
    }
  }
};

// Reads element i of a complex parameter stored as a (re, im) pair.
template <typename T>
complexd at(const Tensor& re, const Tensor& im, int64_t i) {
  return {static_cast<double>(re.data<T>()[i]), static_cast<double>(im.data<T>()[i])};
}

// The Woodbury combination at one frequency and its partial derivatives.
struct Woodbury {
  int64_t R;
  complexd s, a, b[2], c[2], M[2][2], Mc[2], Mtb[2], value;
  Woodbury(const complexd* r, const VectorLayout& lay, complexd s_) : R(lay.R), s(s_) {
    a = r[lay.CB()];
    complexd D[2][2] = {};
    for (int64_t i = 0; i < R; ++i) {
      b[i] = r[lay.CP(i)];
      c[i] = r[lay.PB(i)];
      for (int64_t j = 0; j < R; ++j) D[i][j] = r[lay.PP(i, j)];
    }
    if (R == 1) {
      M[0][0] = 1.0 / (1.0 + D[0][0]);
    } else {
      const complexd det = (1.0 + D[0][0]) * (1.0 + D[1][1]) - D[0][1] * D[1][0];
      M[0][0] = (1.0 + D[1][1]) / det;
      M[0][1] = -D[0][1] / det;
      M[1][0] = -D[1][0] / det;
      M[1][1] = (1.0 + D[0][0]) / det;
    }
    complexd low_rank = 0;
    for (int64_t i = 0; i < R; ++i) {
      Mc[i] = Mtb[i] = 0;
      for (int64_t j = 0; j < R; ++j) {
        Mc[i] += M[i][j] * c[j];
        Mtb[i] += M[j][i] * b[j];
      }
      low_rank += b[i] * Mc[i];
    }
    value = s * (a - low_rank);
  }
  // Gradients of the M Cauchy sums given g = ∂ℒ/∂K̂ at this frequency.
  void backward(complexd g, const VectorLayout& lay, complexd* g_r) const {
    g_r[lay.CB()] = g * std::conj(s);
    for (int64_t i = 0; i < R; ++i) {
      g_r[lay.CP(i)] = g * std::conj(-s * Mc[i]);
      g_r[lay.PB(i)] = g * std::conj(-s * Mtb[i]);
      for (int64_t j = 0; j < R; ++j) g_r[lay.PP(i, j)] = g * std::conj(s * Mtb[i] * Mc[j]);
    }
  }
};

// Cauchy inputs: the product vectors v (H, M, N), Λ, and z_k = (2/Δ)·i·tan(θ_k/2) (H, Kc).
template <typename T>
CauchyInputs cauchy_inputs(const S4Params& p, const Grid& g, const VectorLayout& lay) {
  const int64_t H = g.H, N = g.N, R = g.R, M = lay.count();
  const DType dt = p.log_dt.dtype();
  CauchyInputs in{
      Tensor::empty({H, M, N}, dt), Tensor::empty({H, M, N}, dt), p.Lambda_re, p.Lambda_im,
      Tensor::zeros({H, g.Kc}, dt), Tensor::empty({H, g.Kc}, dt), true};
  T* vr = in.v_re.data<T>();
  T* vi = in.v_im.data<T>();
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t n = 0; n < N; ++n) {
      const int64_t i = h * N + n;
      const complexd B = at<T>(p.B_re, p.B_im, i), C = at<T>(p.C_re, p.C_im, i);
      complexd P[2];
      for (int64_t r = 0; r < R; ++r) P[r] = at<T>(p.P_re, p.P_im, r * H * N + i);
      auto put = [&](int64_t m, complexd v) {
        vr[(h * M + m) * N + n] = static_cast<T>(v.real());
        vi[(h * M + m) * N + n] = static_cast<T>(v.imag());
      };
      put(lay.CB(), C * B);
      for (int64_t a = 0; a < R; ++a) {
        put(lay.CP(a), C * P[a]);
        put(lay.PB(a), std::conj(P[a]) * B);
        for (int64_t b = 0; b < R; ++b) put(lay.PP(a, b), std::conj(P[a]) * P[b]);
      }
    }
    const double inv_dt = std::exp(-static_cast<double>(p.log_dt.data<T>()[h]));
    for (int64_t k = 0; k < g.Kc; ++k)
      in.z_im.data<T>()[h * g.Kc + k] = static_cast<T>(2.0 * inv_dt * g.tan_half[k]);
  }
  return in;
}

// Δ·Re Σ_n C_n B_n: the closed-form Nyquist bin of channel h.
template <typename T>
double nyquist_bin(const S4Params& p, int64_t h, int64_t N) {
  complexd cb = 0;
  for (int64_t n = 0; n < N; ++n)
    cb += at<T>(p.C_re, p.C_im, h * N + n) * at<T>(p.B_re, p.B_im, h * N + n);
  return std::exp(static_cast<double>(p.log_dt.data<T>()[h])) * cb.real();
}

template <typename T>
Tensor forward(const S4Params& p, const Grid& g, const VectorLayout& lay, const CauchyOutput& r) {
  const int64_t M = lay.count(), L = g.L;
  Tensor K = Tensor::empty({g.H, L}, p.log_dt.dtype());
  T* out = K.data<T>();
  const T* rr = r.re.data<T>();
  const T* ri = r.im.data<T>();
#pragma omp parallel if (g.H * L * M >= (1 << 14))
  {
    kissfft<double> inverse(static_cast<size_t>(L), /*inverse=*/true);  // per thread: scratch
    std::vector<complexd> spectrum(L), signal(L), rk(M);
#pragma omp for schedule(static)
    for (int64_t h = 0; h < g.H; ++h) {
      for (int64_t k = 0; k < g.Kc; ++k) {
        for (int64_t m = 0; m < M; ++m)
          rk[m] = complexd(rr[(h * M + m) * g.Kc + k], ri[(h * M + m) * g.Kc + k]);
        const complexd X = Woodbury(rk.data(), lay, g.s[k]).value;
        spectrum[k] = k == 0 ? complexd(X.real(), 0.0) : X;
        if (k > 0) spectrum[L - k] = std::conj(X);
      }
      if (g.nyquist) spectrum[L / 2] = nyquist_bin<T>(p, h, g.N);
      inverse.transform(spectrum.data(), signal.data());
      for (int64_t l = 0; l < L; ++l)
        out[h * L + l] = static_cast<T>(signal[l].real() / static_cast<double>(L));
    }
  }
  return K;
}

template <typename T>
std::vector<Tensor> backward(const S4Params& p, const Grid& g, const VectorLayout& lay,
                             const CauchyInputs& cin, const CauchyOutput& r, const Tensor& gK) {
  const int64_t H = g.H, N = g.N, R = g.R, M = lay.count(), L = g.L, Kc = g.Kc;
  const DType dt = p.log_dt.dtype();
  // 1. ∂ℒ/∂K̂ by a forward DFT of g, then ∂ℒ/∂r through the Woodbury combination.
  Tensor gr_re = Tensor::empty({H, M, Kc}, dt), gr_im = Tensor::empty({H, M, Kc}, dt);
  std::vector<double> g_nyquist(H, 0.0);
  {
    const T* rr = r.re.data<T>();
    const T* ri = r.im.data<T>();
    const T* gk = gK.data<T>();
    T* gre = gr_re.data<T>();
    T* gim = gr_im.data<T>();
#pragma omp parallel if (H * L * M >= (1 << 14))
    {
      kissfft<double> forward_dft(static_cast<size_t>(L), /*inverse=*/false);
      std::vector<complexd> signal(L), spectrum(L), rk(M), grk(M);
#pragma omp for schedule(static)
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t l = 0; l < L; ++l) signal[l] = static_cast<double>(gk[h * L + l]);
        forward_dft.transform(signal.data(), spectrum.data());
        for (int64_t k = 0; k < Kc; ++k) {
          const complexd gX = k == 0 ? complexd(spectrum[0].real() / static_cast<double>(L), 0)
                                     : 2.0 * spectrum[k] / static_cast<double>(L);
          for (int64_t m = 0; m < M; ++m)
            rk[m] = complexd(rr[(h * M + m) * Kc + k], ri[(h * M + m) * Kc + k]);
          Woodbury(rk.data(), lay, g.s[k]).backward(gX, lay, grk.data());
          for (int64_t m = 0; m < M; ++m) {
            gre[(h * M + m) * Kc + k] = static_cast<T>(grk[m].real());
            gim[(h * M + m) * Kc + k] = static_cast<T>(grk[m].imag());
          }
        }
        if (g.nyquist) g_nyquist[h] = spectrum[L / 2].real() / static_cast<double>(L);
      }
    }
  }
  // 2. Through the Cauchy sums.
  kernels::cpu::CauchyGrads gc = kernels::cpu::cauchy_bwd(cin, gr_re, gr_im);
  // 3. From the product vectors and z_k to the parameters.
  Tensor g_log_dt = Tensor::empty({H}, dt), g_P_re = Tensor::empty({R, H, N}, dt),
         g_P_im = Tensor::empty({R, H, N}, dt);
  Tensor g_B_re = Tensor::empty({H, N}, dt), g_B_im = Tensor::empty({H, N}, dt),
         g_C_re = Tensor::empty({H, N}, dt), g_C_im = Tensor::empty({H, N}, dt);
  for (int64_t h = 0; h < H; ++h) {
    const double delta = std::exp(static_cast<double>(p.log_dt.data<T>()[h]));
    // z_k = i·z_im,k and dz/dlog_dt = −z: ∂ℒ/∂log_dt = −Σ_k Re(conj(g_z)·z) = −Σ_k g_z,im·z_im.
    double d_log_dt = 0;
    for (int64_t k = 0; k < Kc; ++k)
      d_log_dt -= static_cast<double>(gc.z_im.data<T>()[h * Kc + k]) *
                  static_cast<double>(cin.z_im.data<T>()[h * Kc + k]);
    for (int64_t n = 0; n < N; ++n) {
      const int64_t i = h * N + n;
      const complexd B = at<T>(p.B_re, p.B_im, i), C = at<T>(p.C_re, p.C_im, i);
      complexd P[2], gP[2] = {};
      for (int64_t a = 0; a < R; ++a) P[a] = at<T>(p.P_re, p.P_im, a * H * N + i);
      auto gv = [&](int64_t m) { return at<T>(gc.v_re, gc.v_im, (h * M + m) * N + n); };
      // A product x·y sends g·conj(y) to x; a factor conj(x) receives conj(g)·y instead.
      complexd gB = gv(lay.CB()) * std::conj(C), gC = gv(lay.CB()) * std::conj(B);
      for (int64_t a = 0; a < R; ++a) {
        gC += gv(lay.CP(a)) * std::conj(P[a]);
        gP[a] += gv(lay.CP(a)) * std::conj(C);
        gB += gv(lay.PB(a)) * P[a];
        gP[a] += std::conj(gv(lay.PB(a))) * B;
        for (int64_t b = 0; b < R; ++b) {
          gP[b] += gv(lay.PP(a, b)) * P[a];
          gP[a] += std::conj(gv(lay.PP(a, b))) * P[b];
        }
      }
      if (g.nyquist) {  // K̂_nyq = Δ·Re Σ C_n B_n
        gC += g_nyquist[h] * delta * std::conj(B);
        gB += g_nyquist[h] * delta * std::conj(C);
        d_log_dt += g_nyquist[h] * delta * (C * B).real();
      }
      g_B_re.data<T>()[i] = static_cast<T>(gB.real());
      g_B_im.data<T>()[i] = static_cast<T>(gB.imag());
      g_C_re.data<T>()[i] = static_cast<T>(gC.real());
      g_C_im.data<T>()[i] = static_cast<T>(gC.imag());
      for (int64_t a = 0; a < R; ++a) {
        g_P_re.data<T>()[a * H * N + i] = static_cast<T>(gP[a].real());
        g_P_im.data<T>()[a * H * N + i] = static_cast<T>(gP[a].imag());
      }
    }
    g_log_dt.data<T>()[h] = static_cast<T>(d_log_dt);
  }
  return {g_log_dt, gc.lambda_re, gc.lambda_im, g_P_re, g_P_im, g_B_re, g_B_im, g_C_re, g_C_im};
}

}  // namespace

Tensor s4_kernel(const Tensor& log_dt, const Tensor& Lambda_re, const Tensor& Lambda_im,
                 const Tensor& P_re, const Tensor& P_im, const Tensor& B_re, const Tensor& B_im,
                 const Tensor& C_re, const Tensor& C_im, int64_t L) {
  const S4Params raw{log_dt, Lambda_re, Lambda_im, P_re, P_im, B_re, B_im, C_re, C_im};
  detail::check_s4_params(raw, L, "s4_kernel");
  const S4Params p = detail::contiguous_detached(raw);
  const Grid grid(p, L);
  const VectorLayout lay{grid.R};
  CauchyInputs cin;
  CauchyOutput r;
  Tensor K;
  SSM_DISPATCH_FLOAT(p.log_dt.dtype(), "s4_kernel", [&] {
    cin = cauchy_inputs<scalar_t>(p, grid, lay);
    r = kernels::cpu::cauchy_fwd(cin);
    K = forward<scalar_t>(p, grid, lay, r);
  });
  return record("s4_kernel", K, {log_dt, Lambda_re, Lambda_im, P_re, P_im, B_re, B_im, C_re, C_im},
                [p, grid, lay, cin, r](const std::vector<Tensor>& grads) {
                  const Tensor gK = grads[0].to(p.log_dt.dtype()).contiguous();
                  return SSM_DISPATCH_FLOAT(p.log_dt.dtype(), "s4_kernel backward", [&] {
                    return backward<scalar_t>(p, grid, lay, cin, r, gK);
                  });
                });
}

}  // namespace ssm
