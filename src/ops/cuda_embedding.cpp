// embedding on CUDA tensors as an autograd op: kernels/cuda/embedding.cu gathers the rows and,
// backward, scatter-adds dY into a zeroed dW. Ids on the GPU are validated by the gather itself
// (it skips and reports the first id outside [0, V)); reading that report back waits for the
// stream once per call, the price of raising the error at the call rather than later. Under
// CUDA-graph capture nothing may wait, so there the caller validates the ids before each replay
// (infer/graphed_decoder.cpp does).
#include "ops/cuda_embedding.h"

#include "ssm/autograd/node.h"

#ifdef SSM_WITH_CUDA
#include <cstdint>

#include "core/cuda/check.h"
#include "core/cuda/graph.h"
#include "core/cuda/memory.h"
#include "kernels/cuda/embedding.h"
#endif

namespace ssm {

#ifdef SSM_WITH_CUDA

Tensor cuda_embedding(const Tensor& ids, const Tensor& weight) {
  namespace kc = kernels::cuda;
  using cuda::detail::CopyKind;
  const int64_t V = weight.size(0), D = weight.size(1), n = ids.numel();
  const bool check_on_device = ids.device() == Device::CUDA && !cuda::detail::capturing();
  const Tensor idd = ids.device() == Device::CUDA ? ids : ids.to(Device::CUDA);
  const Tensor wc = weight.detach().contiguous();
  Shape out_shape = ids.shape();
  out_shape.push_back(D);
  Tensor out = Tensor::empty(out_shape, weight.dtype(), Device::CUDA);
  Tensor first_bad;  // index of the first bad id, UINT64_MAX when none
  if (check_on_device) {
    first_bad = Tensor::empty({1}, DType::I64, Device::CUDA);
    SSM_CUDA_CHECK(
        cudaMemsetAsync(first_bad.raw_data(), 0xFF, sizeof(uint64_t), cuda::detail::stream()),
        "embedding");
  }
  auto* bad = check_on_device ? static_cast<unsigned long long*>(first_bad.raw_data()) : nullptr;
  SSM_DISPATCH_FLOAT(wc.dtype(), "embedding", [&] {
    SSM_DISPATCH_INDEX(idd.dtype(), "embedding", [&] {
      SSM_CUDA_CHECK(
          (kc::embedding_fwd<scalar_t, index_t>(
              wc.data_on<scalar_t>(Device::CUDA), idd.data_on<index_t>(Device::CUDA),
              out.data_on<scalar_t>(Device::CUDA), n, V, D, bad, cuda::detail::stream())),
          "embedding");
    });
  });
  if (check_on_device) {
    uint64_t index = 0;
    cuda::detail::copy(&index, bad, sizeof(index), CopyKind::DeviceToHost);
    if (index != UINT64_MAX)
      SSM_DISPATCH_INDEX(idd.dtype(), "embedding", [&] {
        index_t id = 0;
        cuda::detail::copy(&id, idd.data_on<index_t>(Device::CUDA) + index, sizeof(id),
                           CopyKind::DeviceToHost);
        embedding_bad_id(static_cast<int64_t>(id), static_cast<int64_t>(index), V);
      });
  }
  return record("embedding", out, {weight}, [idd, V, D, n](const std::vector<Tensor>& g) {
    const Tensor go = g[0].to(Device::CUDA).contiguous();
    Tensor gw = Tensor::empty({V, D}, go.dtype(), Device::CUDA);
    SSM_CUDA_CHECK(
        cudaMemsetAsync(gw.raw_data(), 0, V * D * dtype_size(gw.dtype()), cuda::detail::stream()),
        "embedding");
    SSM_DISPATCH_FLOAT(go.dtype(), "embedding", [&] {
      SSM_DISPATCH_INDEX(idd.dtype(), "embedding", [&] {
        SSM_CUDA_CHECK((kc::embedding_bwd<scalar_t, index_t>(
                           go.data_on<scalar_t>(Device::CUDA), idd.data_on<index_t>(Device::CUDA),
                           gw.data_on<scalar_t>(Device::CUDA), n, D, cuda::detail::stream())),
                       "embedding");
      });
    });
    return std::vector<Tensor>{gw};
  });
}

#else  // no CUDA backend

Tensor cuda_embedding(const Tensor&, const Tensor&) {
  SSM_FAIL("embedding: this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
}

#endif

}  // namespace ssm
