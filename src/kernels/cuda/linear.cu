// The bias parts of linear on CUDA (the products are cuBLAS GEMMs, kernels/cuda/gemm.cpp).
// Column sums run in two passes so the result does not depend on scheduling: pass 1 gives each
// block a tile of 32 columns and one chunk of rows, 8 threads per column each summing every 8th
// row, then the 8 partial sums in a fixed order; pass 2 sums the chunks of each column in order.
// Sums are kept in double, so float32 sums over many rows lose nothing to accumulation.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/linear.h"

namespace ssm::kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kTileCols = 32, kRowThreads = 8;  // pass-1 block: 32 columns × 8 row lanes
constexpr int64_t kMinRowsPerChunk = 64;
constexpr int64_t kTargetBlocks = 1024;  // a few waves on a 132-SM device; enough to fill any

int blocks_for(int64_t n) {
  return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535));
}

template <typename T>
__global__ void fill_rows_kernel(T* y, const T* row, int64_t total, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = row[i % n];
}

template <typename T>
__global__ void __launch_bounds__(kTileCols* kRowThreads)
    column_partial_kernel(const T* a, int64_t rows, int64_t n, int64_t rows_per_chunk,
                          double* scratch) {
  __shared__ double part[kRowThreads][kTileCols + 1];
  const int64_t col = blockIdx.x * int64_t(kTileCols) + threadIdx.x;
  const int64_t r0 = blockIdx.y * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  double acc = 0;
  if (col < n)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowThreads) acc += double(a[r * n + col]);
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < n) {
    double s = 0;
#pragma unroll
    for (int k = 0; k < kRowThreads; ++k) s += part[k][threadIdx.x];
    scratch[blockIdx.y * n + col] = s;
  }
}

template <typename T>
__global__ void column_total_kernel(const double* scratch, int64_t chunks, int64_t n, T* out) {
  const int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (col >= n) return;
  double s = 0;
  for (int64_t c = 0; c < chunks; ++c) s += scratch[c * n + col];
  out[col] = T(s);
}

}  // namespace

template <typename T>
cudaError_t fill_rows(T* y, const T* row, int64_t rows, int64_t n, cudaStream_t stream) {
  const int64_t total = rows * n;
  if (total == 0) return cudaSuccess;
  fill_rows_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(y, row, total, n);
  return cudaGetLastError();
}

int64_t column_sum_chunks(int64_t rows, int64_t n) {
  const int64_t tiles = std::max<int64_t>((n + kTileCols - 1) / kTileCols, 1);
  const int64_t by_rows = std::max<int64_t>((rows + kMinRowsPerChunk - 1) / kMinRowsPerChunk, 1);
  const int64_t wanted = std::max<int64_t>(kTargetBlocks / tiles, 1);
  return std::min<int64_t>(std::min(by_rows, wanted), 65535);
}

template <typename T>
cudaError_t column_sums(const T* a, int64_t rows, int64_t n, T* out, double* scratch,
                        cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const int64_t chunks = column_sum_chunks(rows, n);
  const int64_t rows_per_chunk = std::max<int64_t>((rows + chunks - 1) / chunks, 1);
  const dim3 grid(static_cast<unsigned>((n + kTileCols - 1) / kTileCols),
                  static_cast<unsigned>(chunks));
  column_partial_kernel<T>
      <<<grid, dim3(kTileCols, kRowThreads), 0, stream>>>(a, rows, n, rows_per_chunk, scratch);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  column_total_kernel<T>
      <<<static_cast<unsigned>((n + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
          scratch, chunks, n, out);
  return cudaGetLastError();
}

template cudaError_t fill_rows<float>(float*, const float*, int64_t, int64_t, cudaStream_t);
template cudaError_t fill_rows<double>(double*, const double*, int64_t, int64_t, cudaStream_t);
template cudaError_t column_sums<float>(const float*, int64_t, int64_t, float*, double*,
                                        cudaStream_t);
template cudaError_t column_sums<double>(const double*, int64_t, int64_t, double*, double*,
                                         cudaStream_t);

}  // namespace ssm::kernels::cuda
