// Embedding on CUDA: one thread per output element (consecutive threads along D, so each row is
// read and written coalesced) for the gather, and the same mapping for the scatter-add.
//
// The scatter-add uses atomicAdd (native for float and double on sm_60 and newer): one pass over
// dY, no sort, no extra memory, and no slowdown when one id (padding, say) fills the batch, where
// an owner-computes scheme would serialise that id's rows on one block. The price is that repeated
// ids are summed in an unspecified order, so dW may differ in the last bits between runs; the
// RMSNorm weight gradient already accepts the same.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/embedding.h"

namespace ssm::kernels::cuda {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 20));
}

template <typename T, typename I>
__global__ void embedding_fwd_kernel(const T* weight, const I* ids, T* out, int64_t total,
                                     int64_t V, int64_t D, unsigned long long* first_bad) {
  // With D = 0 each id still gets one (write-free) thread, so it is still validated.
  const int64_t Dl = D > 0 ? D : 1;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / Dl, d = e - i * Dl;
    const int64_t v = static_cast<int64_t>(ids[i]);
    if (v < 0 || v >= V) {
      if (first_bad && d == 0) atomicMin(first_bad, static_cast<unsigned long long>(i));
      continue;
    }
    if (D > 0) out[i * D + d] = weight[v * D + d];
  }
}

template <typename T, typename I>
__global__ void embedding_bwd_kernel(const T* grad_out, const I* ids, T* grad_weight, int64_t total,
                                     int64_t D) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / D, d = e - i * D;
    atomicAdd(grad_weight + static_cast<int64_t>(ids[i]) * D + d, grad_out[e]);
  }
}

}  // namespace

template <typename T, typename I>
cudaError_t embedding_fwd(const T* weight, const I* ids, T* out, int64_t n, int64_t V, int64_t D,
                          unsigned long long* first_bad, cudaStream_t stream) {
  const int64_t total = n * std::max<int64_t>(D, 1);
  if (total == 0) return cudaSuccess;
  embedding_fwd_kernel<T, I>
      <<<blocks_for(total), kThreads, 0, stream>>>(weight, ids, out, total, V, D, first_bad);
  return cudaGetLastError();
}

template <typename T, typename I>
cudaError_t embedding_bwd(const T* grad_out, const I* ids, T* grad_weight, int64_t n, int64_t D,
                          cudaStream_t stream) {
  const int64_t total = n * D;
  if (total == 0) return cudaSuccess;
  embedding_bwd_kernel<T, I>
      <<<blocks_for(total), kThreads, 0, stream>>>(grad_out, ids, grad_weight, total, D);
  return cudaGetLastError();
}

#define SSM_EMBEDDING_INSTANTIATE(T, I)                                                       \
  template cudaError_t embedding_fwd<T, I>(const T*, const I*, T*, int64_t, int64_t, int64_t, \
                                           unsigned long long*, cudaStream_t);                \
  template cudaError_t embedding_bwd<T, I>(const T*, const I*, T*, int64_t, int64_t, cudaStream_t);
SSM_EMBEDDING_INSTANTIATE(float, int32_t)
SSM_EMBEDDING_INSTANTIATE(float, int64_t)
SSM_EMBEDDING_INSTANTIATE(double, int32_t)
SSM_EMBEDDING_INSTANTIATE(double, int64_t)
#undef SSM_EMBEDDING_INSTANTIATE

}  // namespace ssm::kernels::cuda
