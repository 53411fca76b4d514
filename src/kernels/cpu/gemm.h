#pragma once
// GEMM through OpenBLAS on strided tensor views. Pure compute, no autograd.
//
// A matrix view (rows, cols) with strides (rs, cs) reaches BLAS without a copy when one of
// its two strides is 1: cs == 1 is a row-major matrix with leading dimension rs, rs == 1
// is the transpose of a row-major matrix with leading dimension cs. Anything else
// (e.g. a stride-2 slice) is copied to a contiguous buffer first.
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm::cpu {

// One operand as row-major CBLAS sees it.
template <typename T>
struct BlasMatrix {
  const T* data = nullptr;
  bool transposed = false;
  int64_t ld = 1;
};

// C (M, N) = alpha · A (M, K) · B (K, N) + beta · C, C row-major with leading dim ldc.
template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, BlasMatrix<T> a, BlasMatrix<T> b, T beta, T* c,
          int64_t ldc);

// y (N) = A (R, N)ᵀ · 1: the column sums of a row-major matrix with leading dim lda.
template <typename T>
void column_sums(int64_t R, int64_t N, const T* a, int64_t lda, T* y);

// c[i] (= or +=) a[i] · b[i] for every batch index i of the leading dims.
// a (…, M, K), b (…, K, N), c (…, M, N) share the same batch shape (broadcast operands are
// expanded views with stride 0). c's matrices must be row-major (last stride 1); c may
// itself have stride-0 batch dims when `accumulate` is true, which sums the products of
// those batch entries into one matrix (how a broadcast operand's gradient is reduced).
// a and b may have any strides; views BLAS cannot take are copied once.
void batched_matmul_into(const Tensor& a, const Tensor& b, const Tensor& c, bool accumulate);

}  // namespace ssm::cpu
