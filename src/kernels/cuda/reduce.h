#pragma once
// Internal: the reduction every sum / mean is brought to (ops/reduce.cpp), on CUDA:
//   out[a, n] = scale · Σ_k x[a, k, n]      (x contiguous (A, K, N), out contiguous (A, N))
// Sums accumulate in double for both dtypes (the CPU kernel's contract): per thread a serial
// double sum over a strided share of the reduced values, then a fixed-order tree over the block
// (block_reduce.cuh) and, when K is cut into chunks, a sum of the chunks in chunk order. One
// double add per input costs nothing here: the sm_80 / sm_90 parts this backend targets add
// doubles at half the float rate, and the reduction is bound by memory. The order of the
// additions depends only on (A, K, N), so results are the same run after run.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

// How many doubles of scratch sum_akn needs for this shape (0 when it needs none). When the
// outputs are too few to occupy the GPU, K is cut into chunks summed by separate blocks into
// the scratch and then added in chunk order.
int64_t sum_akn_scratch(int64_t A, int64_t K, int64_t N);

// `scratch` holds sum_akn_scratch(A, K, N) doubles (may be null when that is 0).
template <typename T>
cudaError_t sum_akn(const T* x, T* out, double* scratch, int64_t A, int64_t K, int64_t N,
                    double scale, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
