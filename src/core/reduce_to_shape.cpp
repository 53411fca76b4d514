#include "ssm/core/reduce_to_shape.h"

#include "core/strided.h"
#include "ssm/autograd/node.h"
#include "ssm/ops/reduce.h"

#ifdef SSM_WITH_CUDA
#include "core/cuda/check.h"
#include "kernels/cuda/elementwise.h"
#endif

namespace ssm {

Tensor reduce_to_shape(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad.contiguous();
  const int64_t nd = grad.dim();
  const int64_t lead = nd - static_cast<int64_t>(shape.size());
  SSM_CHECK(lead >= 0, "reduce_to_shape: gradient {} has fewer dims than target {}",
            shape_str(grad.shape()), shape_str(shape));
  // Strides of the output seen from the gradient's index space (0 on reduced dims).
  Shape out_strides_full(nd, 0);
  Shape out_strides = contiguous_strides(shape);
  for (int64_t i = lead; i < nd; ++i) {
    const int64_t s = shape[i - lead];
    SSM_CHECK(s == grad.shape()[i] || s == 1, "reduce_to_shape: cannot reduce {} to {}",
              shape_str(grad.shape()), shape_str(shape));
    out_strides_full[i] = (s == grad.shape()[i]) ? out_strides[i - lead] : 0;
  }
  if (grad.device() == Device::CUDA) {
    // The same sum as sum_to_shape (which the shape checks above agree with), through the
    // device reduction kernel; not recorded, as this function promises.
    NoGradGuard no_grad;
    return sum_to_shape(grad, shape).contiguous();
  }
  Tensor out = Tensor::zeros(shape, grad.dtype());
  SSM_DISPATCH_FLOAT(grad.dtype(), "reduce_to_shape", [&] {
    scalar_t* o = out.data<scalar_t>();
    const scalar_t* g = grad.data<scalar_t>();
    const Shape& gs = grad.shape();
    const Shape& gst = grad.strides();
    std::vector<int64_t> idx(nd, 0);
    const int64_t n = grad.numel();
    int64_t go = 0, oo = 0;
    for (int64_t k = 0; k < n; ++k) {
      o[oo] += g[go];
      for (int64_t d = nd - 1; d >= 0; --d) {
        ++idx[d];
        go += gst[d];
        oo += out_strides_full[d];
        if (idx[d] < gs[d]) break;
        go -= gst[d] * gs[d];
        oo -= out_strides_full[d] * gs[d];
        idx[d] = 0;
      }
    }
  });
  return out;
}

void add_into(Tensor& out, const Tensor& src_in) {
  SSM_CHECK(out.shape() == src_in.shape() && out.dtype() == src_in.dtype() && out.is_contiguous(),
            "add_into: shapes {} and {} (or dtypes) differ", shape_str(out.shape()),
            shape_str(src_in.shape()));
  // A gradient arriving on another device than the slot joins the slot's device.
  Tensor src = (src_in.device() == out.device() ? src_in : src_in.to(out.device())).contiguous();
  if (out.device() == Device::CUDA) {
#ifdef SSM_WITH_CUDA
    SSM_DISPATCH_FLOAT(out.dtype(), "add_into", [&] {
      SSM_CUDA_CHECK(kernels::cuda::add_into<scalar_t>(out.data_on<scalar_t>(Device::CUDA),
                                                       src.data_on<scalar_t>(Device::CUDA),
                                                       out.numel(), cuda::detail::stream()),
                     "add_into");
    });
    return;
#else
    SSM_FAIL("add_into: a CUDA tensor in a build without the CUDA backend");
#endif
  }
  SSM_DISPATCH_FLOAT(out.dtype(), "add_into", [&] {
    scalar_t* o = out.data<scalar_t>();
    const scalar_t* s = src.data<scalar_t>();
    for (int64_t i = 0, n = out.numel(); i < n; ++i) o[i] += s[i];
  });
}

}  // namespace ssm
