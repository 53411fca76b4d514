// causal_conv1d on CUDA tensors as an autograd op: the kernels of kernels/cuda/causal_conv1d.cu
// forward, and their backward halves as the backward rule.
#include "ops/cuda_conv.h"

#include "ssm/autograd/node.h"

#ifdef SSM_WITH_CUDA
#include "core/cuda/check.h"
#include "kernels/cuda/causal_conv1d.h"
#endif

namespace ssm {

#ifdef SSM_WITH_CUDA

namespace {

namespace kg = kernels::cuda;

template <typename T>
T* dev(const Tensor& t) {
  return t.defined() ? t.data_on<T>(Device::CUDA) : nullptr;
}

}  // namespace

Tensor cuda_causal_conv1d(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in) {
  constexpr const char* op = "causal_conv1d";
  const int64_t B = x_in.size(0), D = x_in.size(1), L = x_in.size(2), K = weight_in.size(1);
  SSM_CHECK(K <= kg::kConvMaxWidth, "{}: kernel width k = {} exceeds the CUDA limit of {}", op, K,
            kg::kConvMaxWidth);
  const Tensor x = x_in.contiguous(), weight = weight_in.contiguous();
  const Tensor bias = bias_in.defined() ? bias_in.contiguous() : Tensor();
  Tensor y = Tensor::empty({B, D, L}, x.dtype(), Device::CUDA);
  SSM_DISPATCH_FLOAT(x.dtype(), op, [&] {
    using T = scalar_t;
    SSM_CUDA_CHECK(kg::causal_conv1d_fwd<T>(dev<T>(x), dev<T>(weight), dev<T>(bias), dev<T>(y), B,
                                            D, L, K, cuda::detail::stream()),
                   op);
  });
  const bool want_x = x_in.requires_grad(), want_w = weight_in.requires_grad(),
             want_b = bias_in.defined() && bias_in.requires_grad();
  const Tensor xs = x.detach(), ws = weight.detach();
  return record(op, y, {x_in, weight_in, bias_in},
                [=](const std::vector<Tensor>& grads) -> std::vector<Tensor> {
                  const Tensor dy = grads[0].to(Device::CUDA).contiguous();
                  auto make = [](bool want, const Shape& s, DType t) {
                    return want ? Tensor::empty(s, t, Device::CUDA) : Tensor();
                  };
                  Tensor dx = make(want_x, xs.shape(), xs.dtype());
                  Tensor dw = make(want_w, ws.shape(), ws.dtype());
                  Tensor db = make(want_b, {D}, xs.dtype());
                  SSM_DISPATCH_FLOAT(xs.dtype(), op, [&] {
                    using T = scalar_t;
                    SSM_CUDA_CHECK(kg::causal_conv1d_bwd<T>(dev<T>(dy), dev<T>(xs), dev<T>(ws),
                                                            dev<T>(dx), dev<T>(dw), dev<T>(db), B,
                                                            D, L, K, cuda::detail::stream()),
                                   "causal_conv1d backward");
                  });
                  return {dx, dw, db};
                });
}

Tensor cuda_causal_conv1d_update(const Tensor& x_t_in, Tensor& conv_state, const Tensor& weight_in,
                                 const Tensor& bias_in) {
  constexpr const char* op = "causal_conv1d_update";
  const int64_t B = x_t_in.size(0), D = x_t_in.size(1), K = weight_in.size(1);
  const Tensor x_t = x_t_in.contiguous(), weight = weight_in.contiguous();
  const Tensor bias = bias_in.defined() ? bias_in.contiguous() : Tensor();
  Tensor y_t = Tensor::empty({B, D}, x_t.dtype(), Device::CUDA);
  SSM_DISPATCH_FLOAT(x_t.dtype(), op, [&] {
    using T = scalar_t;
    SSM_CUDA_CHECK(
        kg::causal_conv1d_update<T>(dev<T>(x_t), dev<T>(conv_state), dev<T>(weight), dev<T>(bias),
                                    dev<T>(y_t), B, D, K, cuda::detail::stream()),
        op);
  });
  return y_t;
}

#else  // no CUDA backend

Tensor cuda_causal_conv1d(const Tensor&, const Tensor&, const Tensor&) {
  SSM_FAIL("causal_conv1d: this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
}
Tensor cuda_causal_conv1d_update(const Tensor&, Tensor&, const Tensor&, const Tensor&) {
  SSM_FAIL("causal_conv1d_update: this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
}

#endif

}  // namespace ssm
