// ssd_state_update on CUDA tensors: the shared checks, contiguous inputs (a decode step's
// tensors are small), then kernels/cuda/ssd_step.cu.
#include "ops/cuda_ssd_step.h"

#include "ssm/kernels/ssd.h"

#ifdef SSM_WITH_CUDA
#include "core/cuda/check.h"
#include "kernels/cuda/ssd_step.h"
#endif

namespace ssm {

#ifdef SSM_WITH_CUDA

Tensor cuda_ssd_state_update(Tensor& state, const kernels::cpu::SsdStepInputs& in) {
  const char* op = "ssd_state_update";
  kernels::cpu::check_ssd_step_inputs(state, in, op);
  const int64_t batch = in.x.size(0), heads = in.x.size(1), P = in.x.size(2);
  const int64_t groups = in.B.size(1), N = in.B.size(2);
  const Tensor x = in.x.contiguous(), dt = in.dt.contiguous(), A = in.A.contiguous();
  const Tensor B = in.B.contiguous(), C = in.C.contiguous();
  const Tensor D = in.D.defined() ? in.D.contiguous() : Tensor();
  Tensor y = Tensor::empty({batch, heads, P}, x.dtype(), Device::CUDA);
  SSM_DISPATCH_FLOAT(x.dtype(), op, [&] {
    using T = scalar_t;
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data_on<T>(Device::CUDA) : nullptr; };
    SSM_CUDA_CHECK(
        kernels::cuda::ssd_state_update<T>(state.data_on<T>(Device::CUDA), ptr(x), ptr(dt), ptr(A),
                                           ptr(B), ptr(C), ptr(D), y.data_on<T>(Device::CUDA),
                                           batch, heads, groups, P, N, cuda::detail::stream()),
        op);
  });
  return y;
}

#else

Tensor cuda_ssd_state_update(Tensor&, const kernels::cpu::SsdStepInputs&) {
  SSM_FAIL("ssd_state_update: this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
}

#endif

}  // namespace ssm
