#include "kernels/cpu/fft_conv.h"

#include <omp.h>

#include <algorithm>
#include <complex>
#include <vector>

#include "kernels/cpu/fft.h"

namespace ssm::kernels::cpu {

namespace {

// The transform length: the smallest even n ≥ 2L whose only prime factors are 2, 3 and 5.
// Any n ≥ 2L − 1 makes the circular convolution (and correlation) linear on [0, L); KissFFT
// handles 2, 3, 4 and 5 with fast butterflies but other primes (2·784 = 2⁵·7²) in O(p²).
int64_t transform_length(int64_t L) {
  for (int64_t n = std::max<int64_t>(2, 2 * L);; n += 2) {
    int64_t m = n;
    for (int64_t p : {2, 3, 5})
      while (m % p == 0) m /= p;
    if (m == 1) return n;
  }
}

// Below this many multiply-adds (B·H·L) a parallel region costs more than it saves.
constexpr int64_t kParallelWork = 1 << 15;

template <typename T>
using Complex = std::complex<T>;

// Spectra are multiplied through their real and imaginary parts so the loops vectorise
// (std::complex's operator* carries NaN/inf recovery branches).
template <typename T>
void multiply_in_place(Complex<T>* a_c, const Complex<T>* b_c, int64_t n) {
  T* __restrict a = reinterpret_cast<T*>(a_c);
  const T* __restrict b = reinterpret_cast<const T*>(b_c);
  for (int64_t i = 0; i < n; ++i) {
    const T ar = a[2 * i], ai = a[2 * i + 1], br = b[2 * i], bi = b[2 * i + 1];
    a[2 * i] = ar * br - ai * bi;
    a[2 * i + 1] = ar * bi + ai * br;
  }
}

// a ← a · conj(b)
template <typename T>
void multiply_conj_in_place(Complex<T>* a_c, const Complex<T>* b_c, int64_t n) {
  T* __restrict a = reinterpret_cast<T*>(a_c);
  const T* __restrict b = reinterpret_cast<const T*>(b_c);
  for (int64_t i = 0; i < n; ++i) {
    const T ar = a[2 * i], ai = a[2 * i + 1], br = b[2 * i], bi = b[2 * i + 1];
    a[2 * i] = ar * br + ai * bi;
    a[2 * i + 1] = ai * br - ar * bi;
  }
}

// acc ← acc + a · conj(b)
template <typename T>
void accumulate_conj_product(Complex<T>* acc_c, const Complex<T>* a_c, const Complex<T>* b_c,
                             int64_t n) {
  T* __restrict acc = reinterpret_cast<T*>(acc_c);
  const T* __restrict a = reinterpret_cast<const T*>(a_c);
  const T* __restrict b = reinterpret_cast<const T*>(b_c);
  for (int64_t i = 0; i < n; ++i) {
    const T ar = a[2 * i], ai = a[2 * i + 1], br = b[2 * i], bi = b[2 * i + 1];
    acc[2 * i] += ar * br + ai * bi;
    acc[2 * i + 1] += ai * br - ar * bi;
  }
}

// out ← a · b (out distinct from a and b)
template <typename T>
void multiply(Complex<T>* out_c, const Complex<T>* a_c, const Complex<T>* b_c, int64_t n) {
  T* __restrict out = reinterpret_cast<T*>(out_c);
  const T* __restrict a = reinterpret_cast<const T*>(a_c);
  const T* __restrict b = reinterpret_cast<const T*>(b_c);
  for (int64_t i = 0; i < n; ++i) {
    const T ar = a[2 * i], ai = a[2 * i + 1], br = b[2 * i], bi = b[2 * i + 1];
    out[2 * i] = ar * br - ai * bi;
    out[2 * i + 1] = ar * bi + ai * br;
  }
}

// out ← out + a · x: the skip term, added while the row is still in cache.
template <typename T>
void add_scaled(T* __restrict out, T a, const T* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] += a * x[i];
}

// Σ a·b in double (the skip gradient sums B·L products per channel; float would lose digits).
// The simd reduction lets the loop vectorise; its order is fixed by the build, so the
// result does not depend on scheduling.
template <typename T>
double dot(const T* a, const T* b, int64_t n) {
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return sum;
}

// What each thread needs, allocated before the parallel region (nothing there may throw):
// its own copy of the plan when KissFFT's plan is not shareable, and complex buffers.
template <typename T>
class Workspace {
 public:
  Workspace(const std::shared_ptr<const RealFft<T>>& plan, int threads, int64_t buffers)
      : shared_(plan),
        stride_(buffers * plan->spectrum_size() + plan->scratch_size()),
        buffers_(buffers),
        memory_(static_cast<size_t>(stride_ * threads)) {
    if (!plan->shareable_across_threads()) {
      copies_.reserve(static_cast<size_t>(threads));
      for (int t = 0; t < threads; ++t) copies_.push_back(*plan);
    }
  }
  const RealFft<T>& plan(int thread) const {
    return copies_.empty() ? *shared_ : copies_[static_cast<size_t>(thread)];
  }
  // Spectrum buffer i (spectrum_size() bins) of a thread.
  Complex<T>* spectrum(int thread, int64_t i) {
    return memory_.data() + thread * stride_ + i * shared_->spectrum_size();
  }
  Complex<T>* scratch(int thread) {
    return memory_.data() + thread * stride_ + buffers_ * shared_->spectrum_size();
  }

 private:
  std::shared_ptr<const RealFft<T>> shared_;
  std::vector<RealFft<T>> copies_;
  int64_t stride_, buffers_;
  std::vector<Complex<T>> memory_;
};

// The kernel's spectra, scaled by 1/N so that one unscaled inverse finishes a product.
template <typename T>
std::vector<Complex<T>> kernel_spectra(const T* k, int64_t H, int64_t L, Workspace<T>& ws,
                                       int threads) {
  const int64_t S = ws.plan(0).spectrum_size();
  std::vector<Complex<T>> spectra(static_cast<size_t>(H * S));
  const T scale = T(1) / ws.plan(0).inverse_scale();
#pragma omp parallel for num_threads(threads) schedule(dynamic, 4)
  for (int64_t h = 0; h < H; ++h) {
    const int t = omp_get_thread_num();
    Complex<T>* K = spectra.data() + h * S;
    ws.plan(t).forward_padded(k + h * L, L, K, ws.scratch(t));
    for (int64_t s = 0; s < S; ++s) K[s] *= scale;
  }
  return spectra;
}

int threads_for(int64_t work) {
  return work >= kParallelWork ? omp_get_max_threads() : 1;
}

}  // namespace

int64_t fft_conv_spectrum_size(int64_t L) {
  return transform_length(L) / 2 + 1;
}

template <typename T>
void fft_conv_fwd(const T* u, const T* k, const T* skip, T* y, Complex<T>* u_spectra, int64_t B,
                  int64_t H, int64_t L) {
  if (B * H * L == 0) return;
  const auto plan = real_fft_plan<T>(transform_length(L));
  const int64_t S = plan->spectrum_size();
  const int threads = threads_for(B * H * L);
  Workspace<T> ws(plan, threads, /*buffers=*/1);
  const std::vector<Complex<T>> K = kernel_spectra(k, H, L, ws, threads);

  // Rows are visited h-major so that consecutive rows reuse K[h] from L1 (all of K may not
  // fit in L2). Dynamic chunks keep both threads busy when one is slowed by other work.
#pragma omp parallel for num_threads(threads) schedule(dynamic, 8)
  for (int64_t item = 0; item < B * H; ++item) {
    const int t = omp_get_thread_num();
    const int64_t h = item / B, row = (item % B) * H + h;
    const T* u_row = u + row * L;
    T* y_row = y + row * L;
    Complex<T>* product = ws.spectrum(t, 0);
    Complex<T>* scratch = ws.scratch(t);
    const RealFft<T>& p = ws.plan(t);
    if (u_spectra) {
      // The spectrum of u is kept for the backward (dk), so the product goes elsewhere.
      Complex<T>* U = u_spectra + row * S;
      p.forward_padded(u_row, L, U, scratch);
      multiply(product, U, K.data() + h * S, S);
    } else {
      p.forward_padded(u_row, L, product, scratch);
      multiply_in_place(product, K.data() + h * S, S);
    }
    p.inverse_unscaled(product, y_row, L, scratch);
    if (skip) add_scaled(y_row, skip[h], u_row, L);
  }
}

template <typename T>
void fft_conv_bwd(const T* dy, const T* u, const Complex<T>* u_spectra, const T* k, const T* skip,
                  T* du, T* dk, T* dskip, int64_t B, int64_t H, int64_t L) {
  if (B * H * L == 0) {
    if (dk) std::fill(dk, dk + H * L, T(0));
    if (dskip) std::fill(dskip, dskip + H, T(0));
    return;
  }
  if (!du && !dk && !dskip) return;
  const auto plan = real_fft_plan<T>(transform_length(L));
  const int64_t S = plan->spectrum_size();
  const int threads = threads_for(B * H * L);
  Workspace<T> ws(plan, threads, /*buffers=*/3);  // DY, U, and the dk accumulator
  std::vector<Complex<T>> K;
  if (du) K = kernel_spectra(k, H, L, ws, threads);
  const T scale = T(1) / plan->inverse_scale();

  // Work items are (h, a run of b): dk[h] sums over b, so a run's rows share one spectrum
  // accumulator. With enough channels a run is all of B and finishes dk[h] itself; with few
  // channels B is cut into several runs (for parallelism) whose sums meet in dk_spectra.
  const int64_t runs_per_h = std::min(B, (4 * threads + H - 1) / H);
  const int64_t run_length = (B + runs_per_h - 1) / runs_per_h;
  const bool shared_sums = dk && runs_per_h > 1;
  std::vector<Complex<T>> dk_spectra(shared_sums ? static_cast<size_t>(H * S) : 0);
  // dskip: one partial sum per item, added up in item order afterwards, so the result does
  // not depend on which thread finished first.
  std::vector<double> dskip_partials(dskip ? static_cast<size_t>(H * runs_per_h) : 0);

#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t item = 0; item < H * runs_per_h; ++item) {
    const int t = omp_get_thread_num();
    const int64_t h = item / runs_per_h;
    const int64_t b_begin = (item % runs_per_h) * run_length;
    const int64_t b_end = std::min(B, b_begin + run_length);
    const RealFft<T>& p = ws.plan(t);
    Complex<T>* DY = ws.spectrum(t, 0);
    Complex<T>* U = ws.spectrum(t, 1);
    Complex<T>* acc = ws.spectrum(t, 2);
    Complex<T>* scratch = ws.scratch(t);
    double skip_sum = 0;
    if (dk) std::fill(acc, acc + S, Complex<T>(0, 0));
    for (int64_t b = b_begin; b < b_end; ++b) {
      const int64_t row = b * H + h, offset = row * L;
      const T* dy_row = dy + offset;
      if (du || dk) p.forward_padded(dy_row, L, DY, scratch);
      if (dk) {
        // The forward's saved spectrum of u, or a fresh transform when none was saved.
        const Complex<T>* U_row = U;
        if (u_spectra)
          U_row = u_spectra + row * S;
        else
          p.forward_padded(u + offset, L, U, scratch);
        accumulate_conj_product(acc, DY, U_row, S);
      }
      if (du) {
        multiply_conj_in_place(DY, K.data() + h * S, S);
        p.inverse_unscaled(DY, du + offset, L, scratch);
        if (skip) add_scaled(du + offset, skip[h], dy_row, L);
      }
      if (dskip) skip_sum += dot(dy_row, u + offset, L);
    }
    if (dskip) dskip_partials[static_cast<size_t>(item)] = skip_sum;
    if (!dk || b_begin >= b_end) continue;
    if (shared_sums) {
      Complex<T>* target = dk_spectra.data() + h * S;
#pragma omp critical(ssm_fft_conv_dk)
      for (int64_t s = 0; s < S; ++s) target[s] += acc[s];
    } else {
      p.inverse_unscaled(acc, dk + h * L, L, scratch);
      for (int64_t j = 0; j < L; ++j) dk[h * L + j] *= scale;
    }
  }

  if (dskip)
    for (int64_t h = 0; h < H; ++h) {
      double sum = 0;
      for (int64_t r = 0; r < runs_per_h; ++r)
        sum += dskip_partials[static_cast<size_t>(h * runs_per_h + r)];
      dskip[h] = static_cast<T>(sum);
    }

  if (!shared_sums) return;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t h = 0; h < H; ++h) {
    const int t = omp_get_thread_num();
    T* out = dk + h * L;
    ws.plan(t).inverse_unscaled(dk_spectra.data() + h * S, out, L, ws.scratch(t));
    for (int64_t j = 0; j < L; ++j) out[j] *= scale;
  }
}

template void fft_conv_fwd<float>(const float*, const float*, const float*, float*,
                                  std::complex<float>*, int64_t, int64_t, int64_t);
template void fft_conv_fwd<double>(const double*, const double*, const double*, double*,
                                   std::complex<double>*, int64_t, int64_t, int64_t);
template void fft_conv_bwd<float>(const float*, const float*, const std::complex<float>*,
                                  const float*, const float*, float*, float*, float*, int64_t,
                                  int64_t, int64_t);
template void fft_conv_bwd<double>(const double*, const double*, const std::complex<double>*,
                                   const double*, const double*, double*, double*, double*, int64_t,
                                   int64_t, int64_t);

}  // namespace ssm::kernels::cpu
