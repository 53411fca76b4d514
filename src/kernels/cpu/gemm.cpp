#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <optional>

#include "kernels/cpu/simd_vec.h"

namespace ssm::cpu {

namespace {

namespace simd = kernels::cpu::simd;

// y[r · incy] += alpha · Σ_c W[r, c] · x[c] for a row-major W (R, C) with leading dim ldw and a
// contiguous x: one row at a time, one sequential stream of W per thread, four independent
// vector accumulators. On the machines measured (docs/PERFORMANCE.md) this streams the matrix
// close to memory bandwidth where OpenBLAS's GEMV interleaves several rows and reaches about
// half of it; and it runs on the OpenMP threads, so a decode step does not wake OpenBLAS's
// own thread pool between OpenMP regions (the two pools contend for the cores).
template <typename T>
void gemv_rows(int64_t R, int64_t C, T alpha, const T* W, int64_t ldw, const T* x, T* y,
               int64_t incy) {
  constexpr int64_t kW = simd::kLanes<T>, kU = 4;
#pragma omp parallel for schedule(static) if (R * C >= (int64_t{1} << 15))
  for (int64_t r = 0; r < R; ++r) {
    const T* w = W + r * ldw;
    simd::Vec<T> acc[kU] = {};
    int64_t c = 0;
    for (; c + kU * kW <= C; c += kU * kW)
      for (int64_t u = 0; u < kU; ++u)
        acc[u] += simd::load(w + c + u * kW) * simd::load(x + c + u * kW);
    for (; c + kW <= C; c += kW) acc[0] += simd::load(w + c) * simd::load(x + c);
    T s = simd::sum_lanes<T>((acc[0] + acc[1]) + (acc[2] + acc[3]));
    for (; c < C; ++c) s += w[c] * x[c];
    y[r * incy] += alpha * s;
  }
}

CBLAS_TRANSPOSE blas_flag(bool transposed) {
  return transposed ? CblasTrans : CblasNoTrans;
}

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
               const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}
void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, double alpha,
               const double* a, int lda, const double* b, int ldb, double beta, double* c,
               int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}
void blas_gemv(CBLAS_TRANSPOSE t, int R, int C, float alpha, const float* a, int lda,
               const float* x, int incx, float* y, int incy) {
  cblas_sgemv(CblasRowMajor, t, R, C, alpha, a, lda, x, incx, 1.0f, y, incy);
}
void blas_gemv(CBLAS_TRANSPOSE t, int R, int C, double alpha, const double* a, int lda,
               const double* x, int incx, double* y, int incy) {
  cblas_dgemv(CblasRowMajor, t, R, C, alpha, a, lda, x, incx, 1.0, y, incy);
}
void blas_gemv_trans(int R, int N, const float* a, int lda, const float* x, float* y) {
  cblas_sgemv(CblasRowMajor, CblasTrans, R, N, 1.0f, a, lda, x, 1, 0.0f, y, 1);
}
void blas_gemv_trans(int R, int N, const double* a, int lda, const double* x, double* y) {
  cblas_dgemv(CblasRowMajor, CblasTrans, R, N, 1.0, a, lda, x, 1, 0.0, y, 1);
}

// BLAS takes 32-bit sizes (OpenBLAS built without INTERFACE64).
int blas_int(int64_t v, const char* what) {
  SSM_CHECK(v <= INT_MAX, "matmul: {} = {} exceeds the BLAS limit {}", what, v, INT_MAX);
  return static_cast<int>(v);
}

// How BLAS can read a (rows, cols) view with strides (rs, cs), if it can without a copy.
// A size-1 dimension's stride never matters, so it is treated as whatever fits.
template <typename T>
std::optional<BlasMatrix<T>> as_blas_matrix(const T* p, int64_t rows, int64_t cols, int64_t rs,
                                            int64_t cs) {
  const bool unit_cols = cs == 1 || cols <= 1;
  const bool unit_rows = rs == 1 || rows <= 1;
  if (unit_cols && (rows <= 1 || rs >= std::max<int64_t>(cols, 1)))
    return BlasMatrix<T>{p, false, rows <= 1 ? std::max<int64_t>(cols, 1) : rs};
  if (unit_rows && (cols <= 1 || cs >= std::max<int64_t>(rows, 1)))
    return BlasMatrix<T>{p, true, cols <= 1 ? std::max<int64_t>(rows, 1) : cs};
  return std::nullopt;
}

bool blas_readable(const Tensor& t) {
  const int64_t nd = t.dim();
  return SSM_DISPATCH_FLOAT(t.dtype(), "matmul", [&] {
    return as_blas_matrix<scalar_t>(nullptr, t.shape()[nd - 2], t.shape()[nd - 1],
                                    t.strides()[nd - 2], t.strides()[nd - 1])
        .has_value();
  });
}

}  // namespace

template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, BlasMatrix<T> a, BlasMatrix<T> b, T beta, T* c,
          int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: C = beta · C (BLAS would reject lda = 0)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  if (M == 1 || N == 1) {
    // A single row or column is a matrix-vector product. OpenBLAS's GEMM would pack the whole
    // matrix operand first (for a decode step's projections, that copy was most of the time);
    // GEMV streams it once: gemv_rows for a row-major matrix and a contiguous vector, BLAS
    // otherwise. The output is zeroed here and BLAS told beta = 1, so an
    // uninitialised C is never read (whatever BLAS does with beta = 0 and NaN garbage).
    const int64_t n_out = M == 1 ? N : M, out_inc = M == 1 ? 1 : ldc;
    for (int64_t i = 0; i < n_out; ++i) {
      T& ci = c[i * out_inc];
      ci = beta == T(0) ? T(0) : beta * ci;
    }
    if (M == 1) {  // c (1, N) = a (1, K) · op(B): y = op(B)ᵀ x
      const int64_t inc_a = a.transposed ? a.ld : 1;
      if (b.transposed && inc_a == 1)  // x · Wᵀ, as in linear()
        gemv_rows(N, K, alpha, b.data, b.ld, a.data, c, 1);
      else if (b.transposed)  // B stored (N, K) row-major
        blas_gemv(CblasNoTrans, blas_int(N, "N"), blas_int(K, "K"), alpha, b.data,
                  blas_int(b.ld, "ldb"), a.data, blas_int(inc_a, "lda"), c, 1);
      else  // B stored (K, N) row-major
        blas_gemv(CblasTrans, blas_int(K, "K"), blas_int(N, "N"), alpha, b.data,
                  blas_int(b.ld, "ldb"), a.data, blas_int(inc_a, "lda"), c, 1);
    } else {  // c (M, 1) = op(A) (M, K) · b (K, 1)
      const int64_t inc_b = b.transposed ? 1 : b.ld;
      if (!a.transposed && inc_b == 1)
        gemv_rows(M, K, alpha, a.data, a.ld, b.data, c, ldc);
      else if (a.transposed)  // A stored (K, M) row-major
        blas_gemv(CblasTrans, blas_int(K, "K"), blas_int(M, "M"), alpha, a.data,
                  blas_int(a.ld, "lda"), b.data, blas_int(inc_b, "ldb"), c, blas_int(ldc, "ldc"));
      else  // A stored (M, K) row-major
        blas_gemv(CblasNoTrans, blas_int(M, "M"), blas_int(K, "K"), alpha, a.data,
                  blas_int(a.ld, "lda"), b.data, blas_int(inc_b, "ldb"), c, blas_int(ldc, "ldc"));
    }
    return;
  }
  blas_gemm(blas_flag(a.transposed), blas_flag(b.transposed), blas_int(M, "M"), blas_int(N, "N"),
            blas_int(K, "K"), alpha, a.data, blas_int(a.ld, "lda"), b.data, blas_int(b.ld, "ldb"),
            beta, c, blas_int(ldc, "ldc"));
}

template <typename T>
void column_sums(int64_t R, int64_t N, const T* a, int64_t lda, T* y) {
  if (N == 0) return;
  if (R == 0) {
    std::fill(y, y + N, T(0));
    return;
  }
  std::vector<T> ones(R, T(1));
  blas_gemv_trans(blas_int(R, "rows"), blas_int(N, "N"), a, blas_int(lda, "lda"), ones.data(), y);
}

template void gemm<float>(int64_t, int64_t, int64_t, float, BlasMatrix<float>, BlasMatrix<float>,
                          float, float*, int64_t);
template void gemm<double>(int64_t, int64_t, int64_t, double, BlasMatrix<double>,
                           BlasMatrix<double>, double, double*, int64_t);
template void column_sums<float>(int64_t, int64_t, const float*, int64_t, float*);
template void column_sums<double>(int64_t, int64_t, const double*, int64_t, double*);

void batched_matmul_into(const Tensor& a_in, const Tensor& b_in, const Tensor& c, bool accumulate) {
  const int64_t nd = c.dim();
  SSM_CHECK(nd >= 2 && a_in.dim() == nd && b_in.dim() == nd,
            "batched_matmul_into: operands {} @ {} -> {} differ in rank", shape_str(a_in.shape()),
            shape_str(b_in.shape()), shape_str(c.shape()));
  const int64_t M = c.shape()[nd - 2], N = c.shape()[nd - 1], K = a_in.shape()[nd - 1];
  SSM_CHECK(a_in.shape()[nd - 2] == M && b_in.shape()[nd - 2] == K && b_in.shape()[nd - 1] == N &&
                a_in.dtype() == c.dtype() && b_in.dtype() == c.dtype(),
            "batched_matmul_into: operands {} @ {} -> {} do not fit", shape_str(a_in.shape()),
            shape_str(b_in.shape()), shape_str(c.shape()));
  for (int64_t d = 0; d < nd - 2; ++d)
    SSM_CHECK(a_in.shape()[d] == c.shape()[d] && b_in.shape()[d] == c.shape()[d],
              "batched_matmul_into: batch shapes of {} @ {} -> {} differ", shape_str(a_in.shape()),
              shape_str(b_in.shape()), shape_str(c.shape()));
  const int64_t c_rs = c.strides()[nd - 2], c_cs = c.strides()[nd - 1];
  SSM_CHECK((N <= 1 || c_cs == 1) && (M <= 1 || c_rs >= N),
            "batched_matmul_into: output of shape {} is not row-major", shape_str(c.shape()));
  const int64_t ldc = M <= 1 ? std::max<int64_t>(N, 1) : c_rs;

  // Views BLAS cannot read directly (e.g. a stride-2 slice of the last dim) are copied once.
  const Tensor a = blas_readable(a_in) ? a_in.detach() : a_in.detach().contiguous();
  const Tensor b = blas_readable(b_in) ? b_in.detach() : b_in.detach().contiguous();

  const int64_t batch_dims = nd - 2;
  int64_t batch = 1;
  for (int64_t d = 0; d < batch_dims; ++d) batch *= c.shape()[d];
  if (batch == 0) return;

  SSM_DISPATCH_FLOAT(c.dtype(), "matmul", [&] {
    const scalar_t* pa = a.data<scalar_t>();
    const scalar_t* pb = b.data<scalar_t>();
    scalar_t* pc = c.data<scalar_t>();
    std::vector<int64_t> idx(batch_dims, 0);
    int64_t oa = 0, ob = 0, oc = 0;
    // The batch loop is serial: each GEMM is threaded inside OpenBLAS, and several batch
    // entries may accumulate into the same output matrix.
    for (int64_t i = 0; i < batch; ++i) {
      auto ma = as_blas_matrix(pa + oa, M, K, a.strides()[nd - 2], a.strides()[nd - 1]);
      auto mb = as_blas_matrix(pb + ob, K, N, b.strides()[nd - 2], b.strides()[nd - 1]);
      gemm<scalar_t>(M, N, K, scalar_t(1), *ma, *mb, accumulate ? scalar_t(1) : scalar_t(0),
                     pc + oc, ldc);
      for (int64_t d = batch_dims - 1; d >= 0; --d) {  // odometer over the batch dims
        ++idx[d];
        oa += a.strides()[d];
        ob += b.strides()[d];
        oc += c.strides()[d];
        if (idx[d] < c.shape()[d]) break;
        oa -= a.strides()[d] * c.shape()[d];
        ob -= b.strides()[d] * c.shape()[d];
        oc -= c.strides()[d] * c.shape()[d];
        idx[d] = 0;
      }
    }
  });
}

}  // namespace ssm::cpu
