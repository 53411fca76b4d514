// (Gated) RMSNorm on CUDA tensors as an autograd op: kernels/cuda/norm.cu forward, saving the
// per-group rstd (double), and its backward kernel as the backward rule.
#include "ops/cuda_norm.h"

#include "ssm/autograd/node.h"

#ifdef SSM_WITH_CUDA
#include "core/cuda/check.h"
#include "kernels/cuda/norm.h"
#endif

namespace ssm {

#ifdef SSM_WITH_CUDA

namespace {

template <typename T>
T* dev(const Tensor& t) {
  return t.defined() ? t.data_on<T>(Device::CUDA) : nullptr;
}

Tensor detached_contiguous(const Tensor& t) {
  return t.defined() ? t.detach().contiguous() : t;
}

}  // namespace

Tensor cuda_rms_norm(const char* op, const Tensor& x, const Tensor& z, const Tensor& weight,
                     int64_t group, double eps) {
  namespace kg = kernels::cuda;
  const int64_t D = x.size(-1), rows = x.numel() / D;
  const Tensor xc = x.detach().contiguous(), zc = detached_contiguous(z);
  const Tensor wc = detached_contiguous(weight);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
  Tensor rstd = Tensor::empty({rows, D / group}, DType::F64, Device::CUDA);
  SSM_DISPATCH_FLOAT(x.dtype(), op, [&] {
    using T = scalar_t;
    SSM_CUDA_CHECK(
        kg::rms_norm_fwd<T>(dev<T>(xc), dev<T>(zc), dev<T>(wc), dev<T>(y), dev<double>(rstd), rows,
                            D, group, eps, cuda::detail::stream()),
        op);
  });
  const bool need_x = x.requires_grad(), need_z = z.defined() && z.requires_grad(),
             need_w = weight.defined() && weight.requires_grad();
  return record(
      op, y, {x, z, weight},
      [op, xc, zc, wc, rstd, rows, D, group, need_x, need_z, need_w](const std::vector<Tensor>& g) {
        const Tensor gy = g[0].to(Device::CUDA).contiguous();
        auto make = [](bool want, const Shape& s, DType t) {
          return want ? Tensor::empty(s, t, Device::CUDA) : Tensor();
        };
        Tensor gx = make(need_x, xc.shape(), xc.dtype());
        Tensor gz = make(need_z, xc.shape(), xc.dtype());
        Tensor gw = make(need_w, {D}, xc.dtype());
        if (gw.defined())
          SSM_CUDA_CHECK(
              cudaMemsetAsync(gw.raw_data(), 0, D * dtype_size(gw.dtype()), cuda::detail::stream()),
              op);
        SSM_DISPATCH_FLOAT(xc.dtype(), op, [&] {
          using T = scalar_t;
          SSM_CUDA_CHECK(kg::rms_norm_bwd<T>(dev<T>(gy), dev<T>(xc), dev<T>(zc), dev<T>(wc),
                                             dev<double>(rstd), dev<T>(gx), dev<T>(gz), dev<T>(gw),
                                             rows, D, group, cuda::detail::stream()),
                         op);
        });
        return std::vector<Tensor>{gx, gz, gw};
      });
}

#else  // no CUDA backend

Tensor cuda_rms_norm(const char* op, const Tensor&, const Tensor&, const Tensor&, int64_t, double) {
  SSM_FAIL("{}: this build has no CUDA backend (configure with -DSSM_CUDA=ON)", op);
}

#endif

}  // namespace ssm
