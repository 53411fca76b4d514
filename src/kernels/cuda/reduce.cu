// out[a, n] = scale · Σ_k x[a, k, n] on CUDA, accumulated in double. Three kernels by shape:
//   small K (≤ kSmallK): one thread per output walks its K values (no block is mostly idle);
//   N = 1 (a contiguous row per output): a block per (row, chunk); each thread sums a strided
//       part of the row, then a tree over the block (warp butterflies, then the warps in order);
//   N > 1 (columns): a block per (32-column tile, a, chunk); 32 lanes read 32 neighbouring
//       columns of one row (coalesced), kRowLanes rows at a time, then the lanes of a column are
//       added in lane order through shared memory.
// A chunked reduction (K cut into `chunks` blocks' worth) leaves per-chunk sums in the scratch;
// a last kernel adds them in chunk order and scales. The cut depends on the shape only.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/reduce.h"

namespace ssm::kernels::cuda {

namespace {

constexpr int64_t kSmallK = 16;
constexpr int kRowThreads = 256;
constexpr int kTileColumns = 32;
constexpr int kRowLanes = 8;
// Chunking aims at this many blocks (a few per SM on a 132-SM H200), each chunk covering at
// least kMinChunkElements inputs so the extra pass stays small next to the reduction.
constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kMinChunkElements = 4096;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

struct Layout {
  bool small = false;  // thread-per-output kernel
  int64_t tiles = 0;   // blocks per a (N > 1) or 1 (N = 1)
  int64_t chunks = 1;  // blocks along K
  int64_t chunk_rows = 0;
};

Layout layout_for(int64_t A, int64_t K, int64_t N) {
  Layout l;
  if (K <= kSmallK) {
    l.small = true;
    return l;
  }
  l.tiles = N == 1 ? 1 : ceil_div(N, kTileColumns);
  const int64_t blocks = A * l.tiles;
  const int64_t width = N == 1 ? 1 : std::min<int64_t>(N, kTileColumns);
  if (blocks < kTargetBlocks) {
    const int64_t by_size = std::max<int64_t>(1, K * width / kMinChunkElements);
    l.chunks = std::clamp<int64_t>(ceil_div(kTargetBlocks, blocks), 1, by_size);
  }
  l.chunk_rows = ceil_div(K, l.chunks);
  l.chunks = ceil_div(K, l.chunk_rows);  // no empty trailing chunk
  return l;
}

template <typename T>
__global__ void sum_small_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t A, int64_t K,
                                 int64_t N, double scale) {
  const int64_t outputs = A * N;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < outputs; i += stride) {
    const int64_t a = i / N, n = i - a * N;
    const T* p = x + a * K * N + n;
    double s = 0;
    for (int64_t k = 0; k < K; ++k) s += static_cast<double>(p[k * N]);
    out[i] = static_cast<T>(s * scale);
  }
}

// grid (A, chunks). Writes out[a] when there is one chunk, else scratch[c · A + a].
template <typename T>
__global__ void __launch_bounds__(kRowThreads)
    sum_rows_kernel(const T* __restrict__ x, T* __restrict__ out, double* __restrict__ scratch,
                    int64_t A, int64_t K, int64_t chunk_rows, double scale) {
  __shared__ double warp_sums[kMaxWarps];
  const int64_t a = blockIdx.x, c = blockIdx.y;
  const int64_t k0 = c * chunk_rows, k1 = min(K, k0 + chunk_rows);
  const T* row = x + a * K;
  double s = 0;
  for (int64_t k = k0 + threadIdx.x; k < k1; k += kRowThreads) s += static_cast<double>(row[k]);
  s = block_sum(s, warp_sums);
  if (threadIdx.x != 0) return;
  if (gridDim.y == 1)
    out[a] = static_cast<T>(s * scale);
  else
    scratch[c * A + a] = s;
}

// grid (A · tiles, chunks), block (kTileColumns, kRowLanes). Writes out[a, n] when there is one
// chunk, else scratch[(c · A + a) · N + n].
template <typename T>
__global__ void __launch_bounds__(kTileColumns* kRowLanes)
    sum_columns_kernel(const T* __restrict__ x, T* __restrict__ out, double* __restrict__ scratch,
                       int64_t A, int64_t K, int64_t N, int64_t tiles, int64_t chunk_rows,
                       double scale) {
  __shared__ double lanes[kRowLanes][kTileColumns];
  const int64_t a = blockIdx.x / tiles, n = (blockIdx.x % tiles) * kTileColumns + threadIdx.x;
  const int64_t c = blockIdx.y;
  const int64_t k0 = c * chunk_rows, k1 = min(K, k0 + chunk_rows);
  double s = 0;
  if (n < N) {
    const T* col = x + a * K * N + n;
    for (int64_t k = k0 + threadIdx.y; k < k1; k += kRowLanes) s += static_cast<double>(col[k * N]);
  }
  lanes[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || n >= N) return;
  double total = 0;
#pragma unroll
  for (int r = 0; r < kRowLanes; ++r) total += lanes[r][threadIdx.x];
  if (gridDim.y == 1)
    out[a * N + n] = static_cast<T>(total * scale);
  else
    scratch[(c * A + a) * N + n] = total;
}

template <typename T>
__global__ void sum_chunks_kernel(const double* __restrict__ scratch, T* __restrict__ out,
                                  int64_t outputs, int64_t chunks, double scale) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < outputs; i += stride) {
    double s = 0;
    for (int64_t c = 0; c < chunks; ++c) s += scratch[c * outputs + i];
    out[i] = static_cast<T>(s * scale);
  }
}

unsigned blocks_for(int64_t n, int threads) {
  return static_cast<unsigned>(std::min<int64_t>(ceil_div(n, threads), 65536));
}

}  // namespace

int64_t sum_akn_scratch(int64_t A, int64_t K, int64_t N) {
  const Layout l = layout_for(A, K, N);
  return l.small || l.chunks == 1 ? 0 : l.chunks * A * N;
}

template <typename T>
cudaError_t sum_akn(const T* x, T* out, double* scratch, int64_t A, int64_t K, int64_t N,
                    double scale, cudaStream_t stream) {
  const int64_t outputs = A * N;
  if (outputs == 0) return cudaSuccess;
  const Layout l = layout_for(A, K, N);
  if (l.small) {
    sum_small_kernel<T><<<blocks_for(outputs, 256), 256, 0, stream>>>(x, out, A, K, N, scale);
    return cudaGetLastError();
  }
  // Grid limits: x up to 2³¹ − 1, y up to 65535 (chunks are at most kTargetBlocks).
  if (A * l.tiles > 0x7fffffff) return cudaErrorInvalidConfiguration;
  const dim3 grid(static_cast<unsigned>(A * l.tiles), static_cast<unsigned>(l.chunks));
  if (N == 1) {
    sum_rows_kernel<T>
        <<<grid, kRowThreads, 0, stream>>>(x, out, scratch, A, K, l.chunk_rows, scale);
  } else {
    sum_columns_kernel<T><<<grid, dim3(kTileColumns, kRowLanes), 0, stream>>>(
        x, out, scratch, A, K, N, l.tiles, l.chunk_rows, scale);
  }
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || l.chunks == 1) return err;
  sum_chunks_kernel<T>
      <<<blocks_for(outputs, 256), 256, 0, stream>>>(scratch, out, outputs, l.chunks, scale);
  return cudaGetLastError();
}

template cudaError_t sum_akn<float>(const float*, float*, double*, int64_t, int64_t, int64_t,
                                    double, cudaStream_t);
template cudaError_t sum_akn<double>(const double*, double*, double*, int64_t, int64_t, int64_t,
                                     double, cudaStream_t);

}  // namespace ssm::kernels::cuda
