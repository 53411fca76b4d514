// softmax and log_softmax over any dimension (kernels/cpu/softmax, or ops/cuda_softmax for CUDA
// tensors); one backward rule for both devices.
#include "kernels/cpu/softmax.h"

#include "ops/cuda_softmax.h"
#include "ssm/autograd/node.h"
#include "ssm/ops/norm.h"

namespace ssm {

namespace {

Tensor softmax_impl(const char* op, const Tensor& x, int64_t dim, bool log) {
  SSM_CHECK(x.defined(), "{}: argument 'x' is undefined", op);
  SSM_CHECK(is_floating(x.dtype()), "{}: argument 'x' expected float32 or float64, got {}", op,
            dtype_name(x.dtype()));
  SSM_CHECK(x.dim() >= 1, "{}: argument 'x' expected at least one dimension, got shape {}", op,
            shape_str(x.shape()));
  SSM_CHECK(dim >= -x.dim() && dim < x.dim(),
            "{}: argument 'dim' expected a value in [{}, {}) for x of shape {}, got {}", op,
            -x.dim(), x.dim(), shape_str(x.shape()), dim);
  const int64_t d = dim < 0 ? dim + x.dim() : dim;
  // View x as (outer, n, inner) with the normalised dim in the middle.
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= x.size(i);
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.size(i);
  const int64_t n = x.size(d);

  const Tensor xc = x.detach().contiguous();
  const bool on_cuda = x.device() == Device::CUDA;
  Tensor y = on_cuda ? cuda_softmax_forward(op, xc, outer, n, inner, log)
                     : Tensor::empty(x.shape(), x.dtype());
  if (!on_cuda) {
    SSM_DISPATCH_FLOAT(x.dtype(), op, [&] {
      cpu::softmax_fwd(xc.data<scalar_t>(), y.data<scalar_t>(), outer, n, inner, log);
    });
  }
  const Tensor ys = y.detach();  // the backward needs only the output
  return record(op, y, {x}, [op, ys, outer, n, inner, log](const std::vector<Tensor>& g) {
    // The gradient may arrive on the CPU (the engine's seed or zeros): it joins the output.
    const Tensor gy = g[0].to(ys.device()).contiguous();
    if (ys.device() == Device::CUDA)
      return std::vector<Tensor>{cuda_softmax_backward(op, gy, ys, outer, n, inner, log)};
    Tensor gx = Tensor::empty(ys.shape(), ys.dtype());
    SSM_DISPATCH_FLOAT(ys.dtype(), op, [&] {
      cpu::softmax_bwd(gy.data<scalar_t>(), ys.data<scalar_t>(), gx.data<scalar_t>(), outer, n,
                       inner, log);
    });
    return std::vector<Tensor>{gx};
  });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  return softmax_impl("softmax", x, dim, false);
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  return softmax_impl("log_softmax", x, dim, true);
}

}  // namespace ssm
