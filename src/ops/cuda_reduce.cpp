// sum / mean values on CUDA: the scratch of a chunked reduction comes from the caching allocator
// and is released (to the cache, in stream order) when the call returns.
#include "ops/cuda_reduce.h"

#ifdef SSM_WITH_CUDA
#include "core/cuda/check.h"
#include "kernels/cuda/reduce.h"
#endif

namespace ssm {

#ifdef SSM_WITH_CUDA

void cuda_sum_akn(const char* op, const Tensor& x, Tensor& out, int64_t A, int64_t K, int64_t N,
                  double scale) {
  namespace kc = kernels::cuda;
  const int64_t scratch_size = kc::sum_akn_scratch(A, K, N);
  const Tensor scratch =
      scratch_size > 0 ? Tensor::empty({scratch_size}, DType::F64, Device::CUDA) : Tensor();
  double* sp = scratch.defined() ? scratch.data_on<double>(Device::CUDA) : nullptr;
  SSM_DISPATCH_FLOAT(x.dtype(), op, [&] {
    SSM_CUDA_CHECK(kc::sum_akn<scalar_t>(x.data_on<scalar_t>(Device::CUDA),
                                         out.data_on<scalar_t>(Device::CUDA), sp, A, K, N, scale,
                                         cuda::detail::stream()),
                   op);
  });
}

#else  // no CUDA backend

void cuda_sum_akn(const char* op, const Tensor&, Tensor&, int64_t, int64_t, int64_t, double) {
  SSM_FAIL("{}: this build has no CUDA backend (configure with -DSSM_CUDA=ON)", op);
}

#endif

}  // namespace ssm
