#pragma once
// Normalisation kernels over row-major data. Pure compute, no autograd.
// Statistics accumulate in double for both float types (cheap next to the memory traffic)
// and are kept in double for the backward pass; x − mean is formed in double too, so a
// large common offset in float32 data costs no accuracy beyond the input's own rounding.
// Optional operands (weight, bias, gate, and every gradient output) may be nullptr.
#include <cstdint>

namespace ssm::cpu {

// LayerNorm over rows of length D: y = (x − mean) · rstd · w + b.
template <typename T>
void layer_norm_fwd(const T* x, const T* w, const T* b, T* y, double* mean, double* rstd,
                    int64_t rows, int64_t D, double eps);
template <typename T>
void layer_norm_bwd(const T* dy, const T* x, const T* w, const double* mean, const double* rstd,
                    T* dx, T* dw, T* db, int64_t rows, int64_t D);

// (Gated) RMSNorm over groups of `group` channels of rows of length D:
// u = x ⊙ SiLU(z) (u = x when z is nullptr), y = u · rstd · w with one rstd per group.
// rstd holds rows · (D / group) values.
template <typename T>
void rms_norm_fwd(const T* x, const T* z, const T* w, T* y, double* rstd, int64_t rows, int64_t D,
                  int64_t group, double eps);
template <typename T>
void rms_norm_bwd(const T* dy, const T* x, const T* z, const T* w, const double* rstd, T* dx, T* dz,
                  T* dw, int64_t rows, int64_t D, int64_t group);

// BatchNorm with channels last: x (rows, D), statistics per channel over the rows.
// Batch statistics: mean and biased variance per channel (double).
template <typename T>
void batch_norm_stats(const T* x, int64_t rows, int64_t D, double* mean, double* var);
// y = (x − mean) · rstd · w + b per channel.
template <typename T>
void batch_norm_apply(const T* x, const double* mean, const double* rstd, const T* w, const T* b,
                      T* y, int64_t rows, int64_t D);
// Gradients. `batch_stats` says mean/rstd came from this batch (training), so dx also
// carries the terms through the statistics; otherwise they were constants (eval).
template <typename T>
void batch_norm_bwd(const T* dy, const T* x, const double* mean, const double* rstd, const T* w,
                    bool batch_stats, T* dx, T* dw, T* db, int64_t rows, int64_t D);

}  // namespace ssm::cpu
