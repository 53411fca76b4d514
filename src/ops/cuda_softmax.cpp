// softmax / log_softmax values on CUDA tensors (kernels/cuda/softmax.cu).
#include "ops/cuda_softmax.h"

#ifdef SSM_WITH_CUDA
#include "core/cuda/check.h"
#include "kernels/cuda/softmax.h"
#endif

namespace ssm {

#ifdef SSM_WITH_CUDA

Tensor cuda_softmax_forward(const char* op, const Tensor& x, int64_t outer, int64_t n,
                            int64_t inner, bool log) {
  Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
  SSM_DISPATCH_FLOAT(x.dtype(), op, [&] {
    SSM_CUDA_CHECK(kernels::cuda::softmax_fwd<scalar_t>(x.data_on<scalar_t>(Device::CUDA),
                                                        y.data_on<scalar_t>(Device::CUDA), outer, n,
                                                        inner, log, cuda::detail::stream()),
                   op);
  });
  return y;
}

Tensor cuda_softmax_backward(const char* op, const Tensor& dy, const Tensor& y, int64_t outer,
                             int64_t n, int64_t inner, bool log) {
  Tensor dx = Tensor::empty(y.shape(), y.dtype(), Device::CUDA);
  SSM_DISPATCH_FLOAT(y.dtype(), op, [&] {
    SSM_CUDA_CHECK(kernels::cuda::softmax_bwd<scalar_t>(dy.data_on<scalar_t>(Device::CUDA),
                                                        y.data_on<scalar_t>(Device::CUDA),
                                                        dx.data_on<scalar_t>(Device::CUDA), outer,
                                                        n, inner, log, cuda::detail::stream()),
                   op);
  });
  return dx;
}

#else  // no CUDA backend

Tensor cuda_softmax_forward(const char* op, const Tensor&, int64_t, int64_t, int64_t, bool) {
  SSM_FAIL("{}: this build has no CUDA backend (configure with -DSSM_CUDA=ON)", op);
}
Tensor cuda_softmax_backward(const char* op, const Tensor&, const Tensor&, int64_t, int64_t,
                             int64_t, bool) {
  SSM_FAIL("{}: this build has no CUDA backend (configure with -DSSM_CUDA=ON)", op);
}

#endif

}  // namespace ssm
