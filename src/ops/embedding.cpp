// embedding: a row gather forward, a scatter-add backward into the weight. A weight on the GPU
// goes to ops/cuda_embedding.cpp (ids on either device).
#include "ssm/ops/embedding.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "ops/cuda_embedding.h"
#include "ssm/autograd/node.h"

namespace ssm {

namespace {

constexpr int64_t kParallelWork = int64_t{1} << 15;

template <typename T, typename I>
void gather_rows(const T* weight, const I* ids, T* out, int64_t n, int64_t D) {
#pragma omp parallel for schedule(static) if (n * D >= kParallelWork)
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(out + i * D, weight + static_cast<int64_t>(ids[i]) * D, sizeof(T) * D);
}

// grad_weight[ids[i]] += grad_out[i]. Threads own disjoint vocabulary ranges and each scans
// all ids, so repeated ids never race and the summation order is fixed.
template <typename T, typename I>
void scatter_add_rows(const T* grad_out, const I* ids, T* grad_weight, int64_t n, int64_t V,
                      int64_t D) {
  const int threads = n * D >= kParallelWork ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(threads)
  {
    const int64_t parts = omp_get_num_threads(), me = omp_get_thread_num();
    const int64_t lo = V * me / parts, hi = V * (me + 1) / parts;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = static_cast<int64_t>(ids[i]);
      if (v < lo || v >= hi) continue;
      T* __restrict dst = grad_weight + v * D;
      const T* __restrict src = grad_out + i * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) dst[d] += src[d];
    }
  }
}

}  // namespace

void embedding_bad_id(int64_t id, int64_t index, int64_t V) {
  SSM_FAIL(
      "embedding: argument 'ids' holds id {} at index {}, expected a value in [0, {}) (V = {})", id,
      index, V, V);
}

Tensor embedding(const Tensor& ids, const Tensor& weight) {
  SSM_CHECK(ids.defined() && weight.defined(),
            "embedding: arguments 'ids' and 'weight' must be defined");
  SSM_CHECK(ids.dtype() == DType::I32 || ids.dtype() == DType::I64,
            "embedding: argument 'ids' expected int32 or int64, got {}", dtype_name(ids.dtype()));
  SSM_CHECK(is_floating(weight.dtype()),
            "embedding: argument 'weight' expected float32 or float64, got {}",
            dtype_name(weight.dtype()));
  SSM_CHECK(weight.dim() == 2, "embedding: argument 'weight' expected shape (V, D), got {}",
            shape_str(weight.shape()));
  const int64_t V = weight.size(0), D = weight.size(1), n = ids.numel();
  SSM_CHECK(weight.device() == Device::CUDA || ids.device() == Device::CPU,
            "embedding: argument 'ids' expected a cpu tensor (like weight), got {}",
            device_name(ids.device()));
  const Tensor idc = ids.contiguous();
  if (idc.device() == Device::CPU)  // ids on the GPU are checked there, by the gather
    SSM_DISPATCH_INDEX(idc.dtype(), "embedding", [&] {
      const index_t* p = idc.data<index_t>();
      for (int64_t i = 0; i < n; ++i)
        if (p[i] < 0 || static_cast<int64_t>(p[i]) >= V)
          embedding_bad_id(static_cast<int64_t>(p[i]), i, V);
    });
  if (weight.device() == Device::CUDA) return cuda_embedding(idc, weight);

  const Tensor wc = weight.detach().contiguous();
  Shape out_shape = ids.shape();
  out_shape.push_back(D);
  Tensor out = Tensor::empty(out_shape, weight.dtype());
  SSM_DISPATCH_FLOAT(wc.dtype(), "embedding", [&] {
    SSM_DISPATCH_INDEX(idc.dtype(), "embedding", [&] {
      gather_rows(wc.data<scalar_t>(), idc.data<index_t>(), out.data<scalar_t>(), n, D);
    });
  });
  return record("embedding", out, {weight}, [idc, V, D, n](const std::vector<Tensor>& g) {
    const Tensor go = g[0].contiguous();
    Tensor gw = Tensor::zeros({V, D}, go.dtype());
    SSM_DISPATCH_FLOAT(go.dtype(), "embedding", [&] {
      SSM_DISPATCH_INDEX(idc.dtype(), "embedding", [&] {
        scatter_add_rows(go.data<scalar_t>(), idc.data<index_t>(), gw.data<scalar_t>(), n, V, D);
      });
    });
    return std::vector<Tensor>{gw};
  });
}

}  // namespace ssm
