#pragma once
// Internal: the non-GEMM parts of linear on CUDA: the bias broadcast of the forward and the
// column sums of the backward (db = Σ_rows dY). Device pointers, row-major contiguous; queued on
// `stream`.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

// y (rows, n) = row (n) in every row.
template <typename T>
cudaError_t fill_rows(T* y, const T* row, int64_t rows, int64_t n, cudaStream_t stream);

// How many row chunks column_sums splits `rows` into (its scratch holds chunks · n doubles).
int64_t column_sum_chunks(int64_t rows, int64_t n);

// out (n) = Σ_r a[r, :] for a (rows, n). Deterministic: each of column_sum_chunks(rows, n) row
// chunks is summed in a fixed order into `scratch` (double), then the chunks in order.
template <typename T>
cudaError_t column_sums(const T* a, int64_t rows, int64_t n, T* out, double* scratch,
                        cudaStream_t stream);

}  // namespace ssm::kernels::cuda
