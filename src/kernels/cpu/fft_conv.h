#pragma once
// Causal long convolution through real FFTs of length 2L (zero padding makes the circular
// product a linear one), and its gradients as frequency-domain correlations.
// Pure kernels: contiguous row-major buffers, no autograd. T = float or double.
#include <complex>
#include <cstdint>

namespace ssm::kernels::cpu {

// Bins per row of the spectra fft_conv_fwd can save (the rfft of one zero-padded row of u).
int64_t fft_conv_spectrum_size(int64_t L);

// y[b,h,l] = Σ_{j≤l} k[h,j] · u[b,h,l−j] + skip[h] · u[b,h,l].  u, y (B, H, L); k (H, L);
// skip (H) or null (no skip term).
// u_spectra, when not null, receives the spectrum of every row of u, (B, H, S) bins with
// S = fft_conv_spectrum_size(L), for fft_conv_bwd to reuse instead of transforming u again.
template <typename T>
void fft_conv_fwd(const T* u, const T* k, const T* skip, T* y, std::complex<T>* u_spectra,
                  int64_t B, int64_t H, int64_t L);

// Given dy = ∂loss/∂y:
//   du[b,h,m] = Σ_{l≥m} dy[b,h,l] · k[h,l−m] + skip[h] · dy[b,h,m]
//   dk[h,j]   = Σ_b Σ_{l≥j} dy[b,h,l] · u[b,h,l−j]       (correlation with u, summed over b)
//   dskip[h]  = Σ_b Σ_l dy[b,h,l] · u[b,h,l]
// du, dk or dskip may be null when that gradient is not wanted; skip may be null (no skip
// term: du is the correlation alone). u_spectra, when not null, holds the spectra that
// fft_conv_fwd saved for this u, and dk is computed from them rather than from u.
template <typename T>
void fft_conv_bwd(const T* dy, const T* u, const std::complex<T>* u_spectra, const T* k,
                  const T* skip, T* du, T* dk, T* dskip, int64_t B, int64_t H, int64_t L);

}  // namespace ssm::kernels::cpu
