#pragma once
// Internal: the two pieces of gradient-norm clipping on CUDA (src/optim/clip_grad.cpp).
// Device pointers, contiguous; queued on `stream`.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

// How many doubles of scratch sum_of_squares needs for n elements (at least 1).
int64_t sum_of_squares_scratch(int64_t n);

// *out = Σ x[i]² over n elements, each square and every sum in double whatever T. `scratch`
// holds sum_of_squares_scratch(n) doubles. The order of the additions depends only on n, so
// the result is the same run after run.
template <typename T>
cudaError_t sum_of_squares(const T* x, int64_t n, double* scratch, double* out,
                           cudaStream_t stream);

// out[i] = x[i] · coef in T (the CPU loop's product); out may equal x.
template <typename T>
cudaError_t scale(const T* x, T* out, int64_t n, T coef, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
