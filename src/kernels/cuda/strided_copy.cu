// Strided device-to-device copy: one thread per element, the destination index decoded from the
// linear (row-major) position, so a contiguous destination is written coalesced.
#include <cuda_runtime.h>

#include "kernels/cuda/strided_copy.h"

namespace ssm::kernels::cuda {

namespace {

template <typename Word>
__global__ void strided_copy_kernel(const StridedCopyArgs a) {
  const int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (i >= a.numel) return;
  int64_t rest = i, src_off = 0, dst_off = 0;
  for (int d = a.ndim - 1; d >= 0; --d) {
    const int64_t idx = rest % a.shape[d];
    rest /= a.shape[d];
    src_off += idx * a.src_strides[d];
    dst_off += idx * a.dst_strides[d];
  }
  static_cast<Word*>(a.dst)[dst_off] = static_cast<const Word*>(a.src)[src_off];
}

}  // namespace

cudaError_t launch_strided_copy(const StridedCopyArgs& args, cudaStream_t stream) {
  if (args.numel == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const dim3 grid(static_cast<unsigned>((args.numel + kThreads - 1) / kThreads));
  if (args.elem_size == 8)
    strided_copy_kernel<unsigned long long><<<grid, kThreads, 0, stream>>>(args);
  else
    strided_copy_kernel<unsigned int><<<grid, kThreads, 0, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace ssm::kernels::cuda
