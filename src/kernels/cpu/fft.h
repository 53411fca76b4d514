#pragma once
// Real FFT of even length N = 2M through one complex FFT of length M (KissFFT), using the
// even/odd packing: z[n] = x[2n] + i·x[2n+1]. Plans are immutable after construction and
// cached per (N, scalar type).
//
// Conventions (as numpy/torch rfft/irfft): forward is unnormalised,
//   X[k] = Σ_n x[n] e^{−2πikn/N}, k = 0..M (M+1 = N/2+1 bins);
// inverse_unscaled returns N·x (no 1/N: callers fold the scale into a spectrum once).
#include <complex>
#include <cstdint>
#include <memory>
#include <vector>

namespace ssm::kernels::cpu {

template <typename T>
class RealFft {
 public:
  using Complex = std::complex<T>;

  explicit RealFft(int64_t n);    // n even, ≥ 2
  RealFft(const RealFft& other);  // a deep copy, for a thread's private plan
  RealFft(RealFft&& other) noexcept;
  RealFft& operator=(const RealFft&) = delete;
  ~RealFft();

  int64_t size() const { return 2 * half_; }           // N
  int64_t spectrum_size() const { return half_ + 1; }  // N/2 + 1
  int64_t scratch_size() const { return 2 * half_; }   // complex scratch the calls need
  // The inverse of `forward` is inverse_unscaled(·) / inverse_scale().
  T inverse_scale() const { return static_cast<T>(2 * half_); }

  // x (N reals) → X (N/2+1 bins). `scratch` holds scratch_size() complex values.
  void forward(const T* x, Complex* X, Complex* scratch) const;
  // Same, for x whose entries from `nonzero` on are zero (zero padding is implied: x is
  // only read for n < nonzero), so callers need not materialise the padding.
  void forward_padded(const T* x, int64_t nonzero, Complex* X, Complex* scratch) const;
  // X (N/2+1 bins of a Hermitian spectrum) → N·x, writing only x[0 .. keep) (keep ≤ N).
  // X is not modified.
  void inverse_unscaled(const Complex* X, T* x, int64_t keep, Complex* scratch) const;

  // KissFFT's butterfly for radices above 5 writes into a buffer inside the plan, so such a
  // plan must not be used by two threads at once; callers then copy it per thread.
  bool shareable_across_threads() const { return shareable_; }

 private:
  struct ComplexPlans;  // KissFFT's forward and inverse plans of length M (in fft.cpp)
  int64_t half_;        // M
  std::unique_ptr<ComplexPlans> plans_;
  std::vector<Complex> twiddle_;  // W^k = e^{−2πik/N}, k = 0..M
  bool shareable_;
};

// Cached plan for real length n (thread-safe lookup; plans live until exit).
template <typename T>
std::shared_ptr<const RealFft<T>> real_fft_plan(int64_t n);

}  // namespace ssm::kernels::cpu
