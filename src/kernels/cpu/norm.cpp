#include "kernels/cpu/norm.h"

#include <omp.h>

#include <Eigen/Core>
#include <cmath>
#include <vector>

namespace ssm::cpu {

namespace {

// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelWork = int64_t{1} << 15;

int threads_for(int64_t work) {
  return work >= kParallelWork ? omp_get_max_threads() : 1;
}

// Calls body(r, acc) for every row r in [0, rows), rows split statically over threads.
// Each thread owns `width` zeroed double accumulators `acc`; their sum over the threads is
// returned. This reduces per-channel quantities (dw, db, batch statistics) without atomics,
// and with a fixed thread count the result is reproducible.
template <typename Body>
std::vector<double> for_rows_summing_columns(int64_t rows, int64_t width, int64_t work, Body body) {
  const int threads = threads_for(work);
  std::vector<double> partial(static_cast<size_t>(threads) * width, 0.0);
#pragma omp parallel num_threads(threads)
  {
    double* acc = partial.data() + static_cast<size_t>(omp_get_thread_num()) * width;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) body(r, acc);
  }
  std::vector<double> total(width, 0.0);
  for (int t = 0; t < threads; ++t) {
    const double* p = partial.data() + static_cast<size_t>(t) * width;
    for (int64_t j = 0; j < width; ++j) total[j] += p[j];
  }
  return total;
}

// out = σ(z) = 1 / (1 + exp(−z)) over n values, through Eigen's vectorised exp (std::exp
// would leave the loop scalar: ~5× slower in float32).
template <typename T>
void sigmoid(const T* z, T* out, int64_t n) {
  using Vec = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
  using ConstVec = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  Vec(out, n) = (T(1) + (-ConstVec(z, n)).exp()).inverse();
}

}  // namespace

// ------------------------------------------------------------------------------ LayerNorm

template <typename T>
void layer_norm_fwd(const T* x_all, const T* w, const T* b, T* y_all, double* mean_out,
                    double* rstd_out, int64_t rows, int64_t D, double eps) {
  // Absent weight / bias act as ones / zeros, so the output loop stays one fused pass.
  const std::vector<T> ones(w ? 0 : D, T(1)), zeros(b ? 0 : D, T(0));
  const T* __restrict wv = w ? w : ones.data();
  const T* __restrict bv = b ? b : zeros.data();
#pragma omp parallel for schedule(static) num_threads(threads_for(rows* D))
  for (int64_t r = 0; r < rows; ++r) {
    const T* __restrict x = x_all + r * D;
    T* __restrict y = y_all + r * D;
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t d = 0; d < D; ++d) sum += x[d];
    const double mean = sum / D;
    // Two passes (mean, then squared deviations) so large offsets do not cancel.
    double sq = 0;
#pragma omp simd reduction(+ : sq)
    for (int64_t d = 0; d < D; ++d) {
      const double c = x[d] - mean;
      sq += c * c;
    }
    const double rstd = 1.0 / std::sqrt(sq / D + eps);
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) y[d] = static_cast<T>((x[d] - mean) * rstd) * wv[d] + bv[d];
    mean_out[r] = mean;
    rstd_out[r] = rstd;
  }
}

template <typename T>
void layer_norm_bwd(const T* dy_all, const T* x_all, const T* w, const double* mean,
                    const double* rstd, T* dx_all, T* dw, T* db, int64_t rows, int64_t D) {
  const bool param_grads = dw || db;
  // dw and db sum over every row. Each thread adds rows into accumulators of T (full vector
  // width) and flushes them into double every kFlushRows rows, so float32 sums over many
  // rows keep double accuracy without paying for double arithmetic on every element.
  constexpr int64_t kFlushRows = 32;
  const int threads = threads_for(rows * D);
  std::vector<double> partial(param_grads ? static_cast<size_t>(threads) * 2 * D : 0, 0.0);
  const std::vector<T> ones(w ? 0 : D, T(1));
  const T* __restrict wv = w ? w : ones.data();
#pragma omp parallel num_threads(threads)
  {
    // x̂ = (x − mean) · rstd is formed in double (see norm.h) once per row and reused.
    std::vector<T> xhat_buf(D), block_buf(param_grads ? 2 * D : 0, T(0));
    T* __restrict xh = xhat_buf.data();
    T* __restrict block_w = block_buf.data();
    T* __restrict block_b = block_buf.data() + (param_grads ? D : 0);
    double* acc =
        param_grads ? partial.data() + static_cast<size_t>(omp_get_thread_num()) * 2 * D : nullptr;
    int64_t pending = 0;
    auto flush = [&] {
      for (int64_t d = 0; d < 2 * D; ++d) {
        acc[d] += block_buf[d];
        block_buf[d] = T(0);
      }
      pending = 0;
    };
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const T* __restrict dy = dy_all + r * D;
      const T* __restrict x = x_all + r * D;
      const double m = mean[r], rs = rstd[r];
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) xh[d] = static_cast<T>((x[d] - m) * rs);
      if (dx_all) {
        // dx = rstd · (g − mean(g) − x̂ · mean(g · x̂)) with g = dy · w.
        T sum_g = 0, sum_gx = 0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
        for (int64_t d = 0; d < D; ++d) {
          const T g = dy[d] * wv[d];
          sum_g += g;
          sum_gx += g * xh[d];
        }
        const T mean_g = sum_g / static_cast<T>(D), mean_gx = sum_gx / static_cast<T>(D);
        const T rs_t = static_cast<T>(rs);
        T* __restrict dx = dx_all + r * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) dx[d] = rs_t * (dy[d] * wv[d] - mean_g - xh[d] * mean_gx);
      }
      if (param_grads) {
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) {
          block_w[d] += dy[d] * xh[d];
          block_b[d] += dy[d];
        }
        if (++pending == kFlushRows) flush();
      }
    }
    if (param_grads && pending > 0) flush();
  }
  for (int64_t d = 0; param_grads && d < D; ++d) {
    double sw = 0, sb = 0;
    for (int t = 0; t < threads; ++t) {
      sw += partial[static_cast<size_t>(t) * 2 * D + d];
      sb += partial[static_cast<size_t>(t) * 2 * D + D + d];
    }
    if (dw) dw[d] = static_cast<T>(sw);
    if (db) db[d] = static_cast<T>(sb);
  }
}

// ------------------------------------------------------------------------ (gated) RMSNorm

template <typename T>
void rms_norm_fwd(const T* x_all, const T* z_all, const T* w, T* y_all, double* rstd_out,
                  int64_t rows, int64_t D, int64_t group, double eps) {
  const int64_t groups = D / group;
#pragma omp parallel for schedule(static) num_threads(threads_for(rows* D))
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < groups; ++k) {
      const int64_t base = r * D + k * group;
      const T* __restrict x = x_all + base;
      T* __restrict y = y_all + base;
      // u = x ⊙ SiLU(z), kept in y until the group's scale is known.
      if (z_all) {
        const T* __restrict z = z_all + base;
        sigmoid(z, y, group);
#pragma omp simd
        for (int64_t d = 0; d < group; ++d) y[d] = x[d] * z[d] * y[d];
      } else {
        for (int64_t d = 0; d < group; ++d) y[d] = x[d];
      }
      double sq = 0;
#pragma omp simd reduction(+ : sq)
      for (int64_t d = 0; d < group; ++d) sq += static_cast<double>(y[d]) * y[d];
      const double rstd = 1.0 / std::sqrt(sq / group + eps);
      const T rs = static_cast<T>(rstd);
      if (w) {
        const T* __restrict wg = w + k * group;
        for (int64_t d = 0; d < group; ++d) y[d] = y[d] * rs * wg[d];
      } else {
        for (int64_t d = 0; d < group; ++d) y[d] *= rs;
      }
      rstd_out[r * groups + k] = rstd;
    }
  }
}

template <typename T>
void rms_norm_bwd(const T* dy_all, const T* x_all, const T* z_all, const T* w, const double* rstd,
                  T* dx_all, T* dz_all, T* dw, int64_t rows, int64_t D, int64_t group) {
  const int64_t groups = D / group;
  const bool input_grads = dx_all || dz_all;
  auto row = [&](int64_t r, double* acc_w) {
    // σ(z) and u = x ⊙ SiLU(z) of one group, computed once per row-group.
    thread_local std::vector<T> sig_buf, u_buf;
    sig_buf.resize(group);
    u_buf.resize(group);
    T* __restrict sig = sig_buf.data();
    T* __restrict u = u_buf.data();
    for (int64_t k = 0; k < groups; ++k) {
      const int64_t base = r * D + k * group;
      const T* __restrict x = x_all + base;
      const T* __restrict dy = dy_all + base;
      const T* __restrict z = z_all ? z_all + base : nullptr;
      const T* __restrict wg = w ? w + k * group : nullptr;
      const T rs = static_cast<T>(rstd[r * groups + k]);
      if (z) {
        sigmoid(z, sig, group);
#pragma omp simd
        for (int64_t d = 0; d < group; ++d) u[d] = x[d] * z[d] * sig[d];
      } else {
        for (int64_t d = 0; d < group; ++d) u[d] = x[d];
      }
      if (dw) {
#pragma omp simd
        for (int64_t d = 0; d < group; ++d)
          acc_w[k * group + d] += static_cast<double>(dy[d]) * (u[d] * rs);
      }
      if (!input_grads) continue;
      // du = rstd · (g − û · mean(g · û)) with g = dy · w, û = u · rstd.
      double dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t d = 0; d < group; ++d) dot += (dy[d] * (wg ? wg[d] : T(1))) * (u[d] * rs);
      const T mean_dot = static_cast<T>(dot / group);
      if (!z) {  // no gate: dx = du
        T* __restrict dx = dx_all + base;
#pragma omp simd
        for (int64_t d = 0; d < group; ++d)
          dx[d] = rs * (dy[d] * (wg ? wg[d] : T(1)) - u[d] * rs * mean_dot);
        continue;
      }
      // du overwrites u in place (each u[d] is last read here).
#pragma omp simd
      for (int64_t d = 0; d < group; ++d)
        u[d] = rs * (dy[d] * (wg ? wg[d] : T(1)) - u[d] * rs * mean_dot);
      // u = x · z · σ(z): ∂u/∂x = SiLU(z), ∂u/∂z = x · σ(z) · (1 + z · (1 − σ(z))).
      if (dx_all) {
        T* __restrict dx = dx_all + base;
#pragma omp simd
        for (int64_t d = 0; d < group; ++d) dx[d] = u[d] * z[d] * sig[d];
      }
      if (dz_all) {
        T* __restrict dz = dz_all + base;
#pragma omp simd
        for (int64_t d = 0; d < group; ++d)
          dz[d] = u[d] * x[d] * sig[d] * (T(1) + z[d] * (T(1) - sig[d]));
      }
    }
  };
  const auto sums = for_rows_summing_columns(rows, dw ? D : 0, rows * D, row);
  for (int64_t d = 0; dw && d < D; ++d) dw[d] = static_cast<T>(sums[d]);
}

// ------------------------------------------------------------------------------ BatchNorm

template <typename T>
void batch_norm_stats(const T* x, int64_t rows, int64_t D, double* mean, double* var) {
  const auto sums = for_rows_summing_columns(rows, D, rows * D, [&](int64_t r, double* acc) {
    const T* __restrict xr = x + r * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) acc[d] += xr[d];
  });
  for (int64_t d = 0; d < D; ++d) mean[d] = sums[d] / rows;
  // Second pass over squared deviations: exact where E[x²] − E[x]² would cancel.
  const auto sq = for_rows_summing_columns(rows, D, rows * D, [&](int64_t r, double* acc) {
    const T* __restrict xr = x + r * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) {
      const double c = xr[d] - mean[d];
      acc[d] += c * c;
    }
  });
  for (int64_t d = 0; d < D; ++d) var[d] = sq[d] / rows;
}

template <typename T>
void batch_norm_apply(const T* x, const double* mean, const double* rstd, const T* w, const T* b,
                      T* y, int64_t rows, int64_t D) {
  // Per channel y = (x − mean) · scale + shift, formed in double (see norm.h).
  std::vector<double> scale(D), shift(D);
  for (int64_t d = 0; d < D; ++d) {
    scale[d] = rstd[d] * (w ? static_cast<double>(w[d]) : 1.0);
    shift[d] = b ? static_cast<double>(b[d]) : 0.0;
  }
  const double* __restrict sc = scale.data();
  const double* __restrict sh = shift.data();
#pragma omp parallel for schedule(static) num_threads(threads_for(rows* D))
  for (int64_t r = 0; r < rows; ++r) {
    const T* __restrict xr = x + r * D;
    T* __restrict yr = y + r * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) yr[d] = static_cast<T>((xr[d] - mean[d]) * sc[d] + sh[d]);
  }
}

template <typename T>
void batch_norm_bwd(const T* dy, const T* x, const double* mean, const double* rstd, const T* w,
                    bool batch_stats, T* dx, T* dw, T* db, int64_t rows, int64_t D) {
  // acc[0, D) sums dy · x̂, acc[D, 2D) sums dy, per channel.
  const bool need_sums = dw || db || (dx && batch_stats);
  std::vector<double> sums;
  if (need_sums) {
    sums = for_rows_summing_columns(rows, 2 * D, rows * D, [&](int64_t r, double* acc) {
      const T* __restrict dyr = dy + r * D;
      const T* __restrict xr = x + r * D;
      double* __restrict acc_x = acc;
      double* __restrict acc_1 = acc + D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) {
        acc_x[d] += dyr[d] * ((xr[d] - mean[d]) * rstd[d]);
        acc_1[d] += dyr[d];
      }
    });
    for (int64_t d = 0; d < D; ++d) {
      if (dw) dw[d] = static_cast<T>(sums[d]);
      if (db) db[d] = static_cast<T>(sums[D + d]);
    }
  }
  if (!dx) return;
  // Training: dx = w·rstd · (dy − mean_rows(dy) − x̂ · mean_rows(dy · x̂)); eval: dx = w·rstd·dy.
  std::vector<double> scale(D), mean_dy(D, 0.0), mean_dyx(D, 0.0);
  for (int64_t d = 0; d < D; ++d) {
    scale[d] = rstd[d] * (w ? static_cast<double>(w[d]) : 1.0);
    if (batch_stats) {
      mean_dyx[d] = sums[d] / rows;
      mean_dy[d] = sums[D + d] / rows;
    }
  }
  const double* __restrict sc = scale.data();
  const double* __restrict mdy = mean_dy.data();
  const double* __restrict mdyx = mean_dyx.data();
#pragma omp parallel for schedule(static) num_threads(threads_for(rows* D))
  for (int64_t r = 0; r < rows; ++r) {
    const T* __restrict dyr = dy + r * D;
    const T* __restrict xr = x + r * D;
    T* __restrict dxr = dx + r * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d)
      dxr[d] = static_cast<T>(sc[d] * (dyr[d] - mdy[d] - (xr[d] - mean[d]) * rstd[d] * mdyx[d]));
  }
}

#define SSM_INSTANTIATE_NORM(T)                                                                    \
  template void layer_norm_fwd<T>(const T*, const T*, const T*, T*, double*, double*, int64_t,     \
                                  int64_t, double);                                                \
  template void layer_norm_bwd<T>(const T*, const T*, const T*, const double*, const double*, T*,  \
                                  T*, T*, int64_t, int64_t);                                       \
  template void rms_norm_fwd<T>(const T*, const T*, const T*, T*, double*, int64_t, int64_t,       \
                                int64_t, double);                                                  \
  template void rms_norm_bwd<T>(const T*, const T*, const T*, const T*, const double*, T*, T*, T*, \
                                int64_t, int64_t, int64_t);                                        \
  template void batch_norm_stats<T>(const T*, int64_t, int64_t, double*, double*);                 \
  template void batch_norm_apply<T>(const T*, const double*, const double*, const T*, const T*,    \
                                    T*, int64_t, int64_t);                                         \
  template void batch_norm_bwd<T>(const T*, const T*, const double*, const double*, const T*,      \
                                  bool, T*, T*, T*, int64_t, int64_t);
SSM_INSTANTIATE_NORM(float)
SSM_INSTANTIATE_NORM(double)
#undef SSM_INSTANTIATE_NORM

}  // namespace ssm::cpu
