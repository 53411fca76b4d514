#pragma once
// Internal: a device-to-device copy from any strides into a contiguous (row-major) layout, for
// Tensor::copy_ and so Tensor::contiguous() on CUDA tensors. Elements are moved as raw 4- or
// 8-byte words (one dtype on both sides).
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

constexpr int kMaxCopyDims = 8;

struct StridedCopyArgs {
  int ndim;
  int64_t numel;
  int64_t shape[kMaxCopyDims];
  int64_t src_strides[kMaxCopyDims];  // in elements
  int64_t dst_strides[kMaxCopyDims];
  const void* src;
  void* dst;
  int elem_size;  // 4 or 8
};

cudaError_t launch_strided_copy(const StridedCopyArgs& args, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
