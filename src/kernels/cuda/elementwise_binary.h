#pragma once
// Internal: broadcasting binary maps on CUDA, out = a ∘ b, with the CPU kernels' walk
// (kernels/cpu/elementwise.h, BroadcastPlan): the output is contiguous and indexed over the
// plan's merged dims; per dim each operand has an element stride, 0 where it is broadcast.
// Device pointers; queued on `stream`. The ops mirror cpu::BinaryOp one to one.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

enum class BinaryOp { Add, Sub, Mul, Div };

// More merged dims than this are refused (ops/cuda_elementwise.cpp says so); plan_broadcast
// merges neighbouring dims, so this bounds the number of alternations between broadcast and
// non-broadcast dims, not the rank.
constexpr int kMaxBroadcastDims = 8;

struct BroadcastIndex {
  int ndim = 1;  // 1..kMaxBroadcastDims
  int64_t sizes[kMaxBroadcastDims] = {};
  int64_t a_strides[kMaxBroadcastDims] = {};
  int64_t b_strides[kMaxBroadcastDims] = {};
};

template <typename T>
cudaError_t binary_fwd(BinaryOp op, const T* a, const T* b, T* out, const BroadcastIndex& index,
                       cudaStream_t stream);

}  // namespace ssm::kernels::cuda
