#pragma once
// Internal, device code only: sums, maxima and minima over a thread block (blockDim.x a
// multiple of 32, at most 1024; blockDim.y == blockDim.z == 1), returned to every thread. The
// order of the combinations is fixed by the thread layout alone (a butterfly within each warp,
// then the warps' partials in warp order), so a result does not change from run to run.
#include <cuda_runtime.h>

namespace ssm::kernels::cuda {

constexpr int kMaxWarps = 32;

struct SumOp {
  template <typename V>
  __device__ __forceinline__ V operator()(V a, V b) const {
    return a + b;
  }
};
// a < b ? b : a, as std::max(a, b): a NaN operand b never wins (the CPU kernels' max).
struct MaxOp {
  template <typename V>
  __device__ __forceinline__ V operator()(V a, V b) const {
    return a < b ? b : a;
  }
};
struct MinOp {
  template <typename V>
  __device__ __forceinline__ V operator()(V a, V b) const {
    return b < a ? b : a;
  }
};

template <typename V, typename Op>
__device__ __forceinline__ V warp_reduce(V v, Op op) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// `scratch` holds kMaxWarps values in shared memory; it may be reused right after the call.
template <typename V, typename Op>
__device__ V block_reduce(V v, V* scratch, Op op) {
  v = warp_reduce(v, op);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  V r = scratch[0];
  for (int k = 1; k < warps; ++k) r = op(r, scratch[k]);
  __syncthreads();
  return r;
}

template <typename V>
__device__ V block_sum(V v, V* scratch) {
  return block_reduce(v, scratch, SumOp{});
}
template <typename V>
__device__ V block_max(V v, V* scratch) {
  return block_reduce(v, scratch, MaxOp{});
}
template <typename V>
__device__ V block_min(V v, V* scratch) {
  return block_reduce(v, scratch, MinOp{});
}

}  // namespace ssm::kernels::cuda
