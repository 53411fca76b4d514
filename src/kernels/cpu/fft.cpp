// Two code-generation options for this file, both measured on KissFFT's butterflies (complex
// float, length 1024, znver3):
// - KissFFT multiplies std::complex values, and by default GCC guards every such product
//   with a NaN/inf recovery branch (C99 Annex G). The twiddles are finite, so the plain
//   formula is all we need (cx-limited-range: ~10% faster).
// - GCC's straight-line (SLP) vectoriser packs the real and imaginary halves of those
//   products into vectors and pays more in shuffles than it saves (~20% faster without it).
// They must be set before any header so that every function here carries them: GCC does
// not inline across functions whose optimisation options differ. KissFFT's template is
// instantiated in a namespace of this file's own (below), so another file's instantiation
// of ::kissfft<T>, compiled without these options, cannot stand in for ours at link time.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("cx-limited-range", "no-tree-slp-vectorize")
#endif

#include "kernels/cpu/fft.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <map>
#include <mutex>
#include <numbers>
#include <utility>
#include <vector>

#include "ssm/core/error.h"

// kissfft.hh includes only <complex>, <utility> and <vector>, all included above, so the
// header adds just its class template here.
namespace ssm::kernels::cpu::kiss {
#include <kissfft/kissfft.hh>
}  // namespace ssm::kernels::cpu::kiss

namespace ssm::kernels::cpu {

template <typename T>
struct RealFft<T>::ComplexPlans {
  kiss::kissfft<T> forward;  // length M, e^{−2πi/M}
  kiss::kissfft<T> inverse;  // length M, e^{+2πi/M}
};

namespace {

// KissFFT handles radices 2, 3, 4, 5 with butterflies that only read the plan; any other
// factor (and the degenerate length 1) goes through a butterfly that uses a buffer inside
// the plan.
bool only_small_radices(int64_t m) {
  if (m < 2) return false;
  for (int64_t p : {2, 3, 5})
    while (m % p == 0) m /= p;
  return m == 1;
}

int64_t checked_half(int64_t n) {
  SSM_CHECK(n >= 2 && n % 2 == 0, "RealFft: length must be even and at least 2, got {}", n);
  return n / 2;
}

}  // namespace

template <typename T>
RealFft<T>::RealFft(int64_t n)
    : half_(checked_half(n)),
      plans_(new ComplexPlans{kiss::kissfft<T>(static_cast<size_t>(half_), /*inverse=*/false),
                              kiss::kissfft<T>(static_cast<size_t>(half_), /*inverse=*/true)}),
      shareable_(only_small_radices(half_)) {
  twiddle_.resize(static_cast<size_t>(half_) + 1);
  // Twiddles in double precision, rounded once, so float plans are as accurate as they can be.
  for (int64_t k = 0; k <= half_; ++k) {
    const double angle = -2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(n);
    twiddle_[k] = Complex(static_cast<T>(std::cos(angle)), static_cast<T>(std::sin(angle)));
  }
}

template <typename T>
RealFft<T>::RealFft(const RealFft& other)
    : half_(other.half_),
      plans_(new ComplexPlans(*other.plans_)),
      twiddle_(other.twiddle_),
      shareable_(other.shareable_) {}

template <typename T>
RealFft<T>::RealFft(RealFft&& other) noexcept = default;

template <typename T>
RealFft<T>::~RealFft() = default;

template <typename T>
void RealFft<T>::forward(const T* x, Complex* X, Complex* scratch) const {
  forward_padded(x, size(), X, scratch);
}

// With z[n] = x[2n] + i·x[2n+1] and Z = FFT_M(z): the DFTs of the even and odd samples are
// E[k] = (Z[k] + conj Z[M−k]) / 2 and O[k] = (Z[k] − conj Z[M−k]) / 2i, and
// X[k] = E[k] + W^k·O[k] with W = e^{−2πi/N}, for k = 0..M (Z is M-periodic).
template <typename T>
void RealFft<T>::forward_padded(const T* x, int64_t nonzero, Complex* X, Complex* scratch) const {
  const int64_t M = half_;
  Complex* z = scratch;
  Complex* Z = scratch + M;
  // z is x read as complex pairs, then zeros: copy the reals, zero the rest.
  const int64_t filled = std::clamp<int64_t>(nonzero, 0, 2 * M);
  T* z_reals = reinterpret_cast<T*>(z);
  std::copy(x, x + filled, z_reals);
  std::fill(z_reals + filled, z_reals + 2 * M, T(0));
  plans_->forward.transform(z, Z);

  // k = 0 and k = M: E and O are real, X[0] = E + O, X[M] = E − O.
  X[0] = Complex(Z[0].real() + Z[0].imag(), 0);
  X[M] = Complex(Z[0].real() - Z[0].imag(), 0);
  const T* __restrict zr = reinterpret_cast<const T*>(Z);
  const T* __restrict tw = reinterpret_cast<const T*>(twiddle_.data());
  T* __restrict out = reinterpret_cast<T*>(X);
  for (int64_t k = 1; k < M; ++k) {
    const T a_re = zr[2 * k], a_im = zr[2 * k + 1];              // Z[k]
    const T b_re = zr[2 * (M - k)], b_im = zr[2 * (M - k) + 1];  // Z[M−k]
    // E = (a + conj b)/2, O = (a − conj b)/(2i) = ((a.im + b.im) − i(a.re − b.re))/2
    const T e_re = T(0.5) * (a_re + b_re), e_im = T(0.5) * (a_im - b_im);
    const T o_re = T(0.5) * (a_im + b_im), o_im = T(-0.5) * (a_re - b_re);
    const T w_re = tw[2 * k], w_im = tw[2 * k + 1];
    out[2 * k] = e_re + w_re * o_re - w_im * o_im;
    out[2 * k + 1] = e_im + w_re * o_im + w_im * o_re;
  }
}

// The inverse undoes the packing: with D[k] = X[k] − conj X[M−k],
// 2E[k] = X[k] + conj X[M−k], 2O[k] = conj(W^k)·D[k], and IFFT_M(2E + 2iO) = 2M·(x_even + i x_odd).
template <typename T>
void RealFft<T>::inverse_unscaled(const Complex* X, T* x, int64_t keep, Complex* scratch) const {
  const int64_t M = half_;
  Complex* Z = scratch;
  Complex* z = scratch + M;
  const T* __restrict in = reinterpret_cast<const T*>(X);
  const T* __restrict tw = reinterpret_cast<const T*>(twiddle_.data());
  T* __restrict zr = reinterpret_cast<T*>(Z);
  for (int64_t k = 0; k < M; ++k) {
    const T a_re = in[2 * k], a_im = in[2 * k + 1];              // X[k]
    const T b_re = in[2 * (M - k)], b_im = in[2 * (M - k) + 1];  // X[M−k]
    const T e_re = a_re + b_re, e_im = a_im - b_im;
    const T d_re = a_re - b_re, d_im = a_im + b_im;
    const T w_re = tw[2 * k], w_im = -tw[2 * k + 1];  // conj(W^k)
    const T o_re = w_re * d_re - w_im * d_im, o_im = w_re * d_im + w_im * d_re;
    zr[2 * k] = e_re - o_im;  // E + i·O
    zr[2 * k + 1] = e_im + o_re;
  }
  plans_->inverse.transform(Z, z);
  // x is z read as real pairs.
  const T* z_reals = reinterpret_cast<const T*>(z);
  std::copy(z_reals, z_reals + std::clamp<int64_t>(keep, 0, 2 * M), x);
}

template <typename T>
std::shared_ptr<const RealFft<T>> real_fft_plan(int64_t n) {
  static std::mutex mutex;
  static std::map<int64_t, std::shared_ptr<const RealFft<T>>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[n];
  if (!slot) slot = std::make_shared<const RealFft<T>>(n);
  return slot;
}

template class RealFft<float>;
template class RealFft<double>;
template std::shared_ptr<const RealFft<float>> real_fft_plan<float>(int64_t);
template std::shared_ptr<const RealFft<double>> real_fft_plan<double>(int64_t);

}  // namespace ssm::kernels::cpu
