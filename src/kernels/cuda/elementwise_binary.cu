// Broadcasting binary maps on CUDA: one output element per thread per grid-stride step, written
// coalesced. Three walks, chosen by the shape of the plan:
//   one dim   (same shapes, or a scalar operand): a[i·sa], b[i·sb] with sa, sb ∈ {0, 1};
//   two dims  (a bias over rows, or rows scaled per row): one division to split i into (row, j);
//   general   (up to kMaxBroadcastDims merged dims): i decomposed dim by dim, innermost first.
#include <cuda_runtime.h>

#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/elementwise_binary.h"

namespace ssm::kernels::cuda {

namespace {

template <BinaryOp kOp, typename T>
__device__ __forceinline__ T apply(T x, T y) {
  if constexpr (kOp == BinaryOp::Add) {
    return x + y;
  } else if constexpr (kOp == BinaryOp::Sub) {
    return x - y;
  } else if constexpr (kOp == BinaryOp::Mul) {
    return x * y;
  } else {
    static_assert(kOp == BinaryOp::Div);
    return x / y;
  }
}

template <BinaryOp kOp, typename T>
__global__ void binary_1d_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                 T* __restrict__ out, int64_t n, int64_t sa, int64_t sb) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = apply<kOp>(a[i * sa], b[i * sb]);
}

template <BinaryOp kOp, typename T>
__global__ void binary_2d_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                 T* __restrict__ out, int64_t n, int64_t inner, int64_t sa0,
                                 int64_t sa1, int64_t sb0, int64_t sb1) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t r = i / inner, j = i - r * inner;
    out[i] = apply<kOp>(a[r * sa0 + j * sa1], b[r * sb0 + j * sb1]);
  }
}

template <BinaryOp kOp, typename T>
__global__ void binary_nd_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                 T* __restrict__ out, int64_t n, const BroadcastIndex index) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t rest = i, ao = 0, bo = 0;
    for (int d = index.ndim - 1; d >= 0; --d) {
      const int64_t q = rest / index.sizes[d], idx = rest - q * index.sizes[d];
      rest = q;
      ao += idx * index.a_strides[d];
      bo += idx * index.b_strides[d];
    }
    out[i] = apply<kOp>(a[ao], b[bo]);
  }
}

template <BinaryOp kOp, typename T>
cudaError_t launch(const T* a, const T* b, T* out, const BroadcastIndex& p, cudaStream_t stream) {
  int64_t n = 1;
  for (int d = 0; d < p.ndim; ++d) n *= p.sizes[d];
  if (n == 0) return cudaSuccess;
  const unsigned blocks = grid_stride_blocks(n);
  if (p.ndim == 1) {
    binary_1d_kernel<kOp, T>
        <<<blocks, kElementwiseThreads, 0, stream>>>(a, b, out, n, p.a_strides[0], p.b_strides[0]);
  } else if (p.ndim == 2) {
    binary_2d_kernel<kOp, T><<<blocks, kElementwiseThreads, 0, stream>>>(
        a, b, out, n, p.sizes[1], p.a_strides[0], p.a_strides[1], p.b_strides[0], p.b_strides[1]);
  } else {
    binary_nd_kernel<kOp, T><<<blocks, kElementwiseThreads, 0, stream>>>(a, b, out, n, p);
  }
  return cudaGetLastError();
}

}  // namespace

template <typename T>
cudaError_t binary_fwd(BinaryOp op, const T* a, const T* b, T* out, const BroadcastIndex& index,
                       cudaStream_t stream) {
  if (index.ndim < 1 || index.ndim > kMaxBroadcastDims) return cudaErrorInvalidValue;
  switch (op) {
    case BinaryOp::Add:
      return launch<BinaryOp::Add>(a, b, out, index, stream);
    case BinaryOp::Sub:
      return launch<BinaryOp::Sub>(a, b, out, index, stream);
    case BinaryOp::Mul:
      return launch<BinaryOp::Mul>(a, b, out, index, stream);
    case BinaryOp::Div:
      return launch<BinaryOp::Div>(a, b, out, index, stream);
  }
  return cudaErrorInvalidValue;
}

template cudaError_t binary_fwd<float>(BinaryOp, const float*, const float*, float*,
                                       const BroadcastIndex&, cudaStream_t);
template cudaError_t binary_fwd<double>(BinaryOp, const double*, const double*, double*,
                                        const BroadcastIndex&, cudaStream_t);

}  // namespace ssm::kernels::cuda
