// layer_norm, rms_norm, gated_rms_norm and batch_norm: one fused forward kernel and one
// hand-written backward kernel each (kernels/cpu/norm).
#include "ssm/ops/norm.h"

#include <cmath>

#include "kernels/cpu/norm.h"
#include "ops/cuda_norm.h"
#include "ssm/autograd/node.h"

namespace ssm {

namespace {

// Pointer to a tensor's data or nullptr for an undefined (optional) tensor.
template <typename T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
template <typename T>
T* mutable_ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

Tensor detached_contiguous(const Tensor& t) {
  return t.defined() ? t.detach().contiguous() : t;
}

Tensor empty_if(bool wanted, const Shape& shape, DType dtype) {
  return wanted ? Tensor::empty(shape, dtype) : Tensor();
}

bool wants_grad(const Tensor& t) {
  return t.defined() && t.requires_grad();
}

void check_input(const Tensor& x, const char* op, const char* expected) {
  SSM_CHECK(x.defined(), "{}: argument 'x' is undefined", op);
  SSM_CHECK(is_floating(x.dtype()), "{}: argument 'x' expected float32 or float64, got {}", op,
            dtype_name(x.dtype()));
  SSM_CHECK(x.dim() >= 1 && x.size(-1) > 0, "{}: argument 'x' expected shape {}, got {}", op,
            expected, shape_str(x.shape()));
}

// An optional per-channel parameter: undefined, or shape (D) in x's dtype.
void check_channel_param(const Tensor& p, const Tensor& x, const char* op, const char* name) {
  if (!p.defined()) return;
  const int64_t D = x.size(-1);
  SSM_CHECK(p.dim() == 1 && p.size(0) == D,
            "{}: argument '{}' expected shape ({}) to match x {}, got {}", op, name, D,
            shape_str(x.shape()), shape_str(p.shape()));
  SSM_CHECK(p.dtype() == x.dtype(), "{}: argument '{}' expected dtype {} (like x), got {}", op,
            name, dtype_name(x.dtype()), dtype_name(p.dtype()));
  SSM_CHECK(p.device() == x.device(), "{}: argument '{}' expected a {} tensor (like x), got {}",
            op, name, device_name(x.device()), device_name(p.device()));
}

void check_eps(double eps, const char* op) {
  SSM_CHECK(std::isfinite(eps) && eps >= 0,
            "{}: argument 'eps' expected a finite value >= 0, got {}", op, eps);
}

// Shared by rms_norm (z undefined, one group) and gated_rms_norm.
Tensor rms_norm_impl(const char* op, const Tensor& x, const Tensor& z, const Tensor& weight,
                     int64_t group, double eps) {
  SSM_CHECK(!z.defined() || z.device() == x.device(),
            "{}: argument 'z' expected a {} tensor (like x), got {}", op, device_name(x.device()),
            device_name(z.device()));
  if (x.device() == Device::CUDA) return cuda_rms_norm(op, x, z, weight, group, eps);
  const int64_t D = x.size(-1), rows = x.numel() / D;
  const Tensor xc = x.detach().contiguous(), zc = detached_contiguous(z);
  const Tensor wc = detached_contiguous(weight);
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  Tensor rstd = Tensor::empty({rows, D / group}, DType::F64);
  SSM_DISPATCH_FLOAT(x.dtype(), op, [&] {
    cpu::rms_norm_fwd(xc.data<scalar_t>(), ptr_or_null<scalar_t>(zc), ptr_or_null<scalar_t>(wc),
                      y.data<scalar_t>(), rstd.data<double>(), rows, D, group, eps);
  });
  const bool need_x = x.requires_grad(), need_z = wants_grad(z), need_w = wants_grad(weight);
  return record(
      op, y, {x, z, weight},
      [op, xc, zc, wc, rstd, rows, D, group, need_x, need_z, need_w](const std::vector<Tensor>& g) {
        const Tensor gy = g[0].contiguous();
        Tensor gx = empty_if(need_x, xc.shape(), xc.dtype());
        Tensor gz = empty_if(need_z, xc.shape(), xc.dtype());
        Tensor gw = empty_if(need_w, {D}, xc.dtype());
        SSM_DISPATCH_FLOAT(xc.dtype(), op, [&] {
          cpu::rms_norm_bwd(gy.data<scalar_t>(), xc.data<scalar_t>(), ptr_or_null<scalar_t>(zc),
                            ptr_or_null<scalar_t>(wc), rstd.data<double>(),
                            mutable_ptr_or_null<scalar_t>(gx), mutable_ptr_or_null<scalar_t>(gz),
                            mutable_ptr_or_null<scalar_t>(gw), rows, D, group);
        });
        return std::vector<Tensor>{gx, gz, gw};
      });
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  check_input(x, "layer_norm", "(…, D) with D > 0");
  check_channel_param(weight, x, "layer_norm", "weight");
  check_channel_param(bias, x, "layer_norm", "bias");
  check_eps(eps, "layer_norm");
  const int64_t D = x.size(-1), rows = x.numel() / D;
  const Tensor xc = x.detach().contiguous(), wc = detached_contiguous(weight);
  const Tensor bc = detached_contiguous(bias);
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  Tensor mean = Tensor::empty({rows}, DType::F64), rstd = Tensor::empty({rows}, DType::F64);
  SSM_DISPATCH_FLOAT(x.dtype(), "layer_norm", [&] {
    cpu::layer_norm_fwd(xc.data<scalar_t>(), ptr_or_null<scalar_t>(wc), ptr_or_null<scalar_t>(bc),
                        y.data<scalar_t>(), mean.data<double>(), rstd.data<double>(), rows, D, eps);
  });
  const bool need_x = x.requires_grad(), need_w = wants_grad(weight), need_b = wants_grad(bias);
  return record(
      "layer_norm", y, {x, weight, bias},
      [xc, wc, mean, rstd, rows, D, need_x, need_w, need_b](const std::vector<Tensor>& g) {
        const Tensor gy = g[0].contiguous();
        Tensor gx = empty_if(need_x, xc.shape(), xc.dtype());
        Tensor gw = empty_if(need_w, {D}, xc.dtype());
        Tensor gb = empty_if(need_b, {D}, xc.dtype());
        SSM_DISPATCH_FLOAT(xc.dtype(), "layer_norm", [&] {
          cpu::layer_norm_bwd(gy.data<scalar_t>(), xc.data<scalar_t>(), ptr_or_null<scalar_t>(wc),
                              mean.data<double>(), rstd.data<double>(),
                              mutable_ptr_or_null<scalar_t>(gx), mutable_ptr_or_null<scalar_t>(gw),
                              mutable_ptr_or_null<scalar_t>(gb), rows, D);
        });
        return std::vector<Tensor>{gx, gw, gb};
      });
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  check_input(x, "rms_norm", "(…, D) with D > 0");
  check_channel_param(weight, x, "rms_norm", "weight");
  check_eps(eps, "rms_norm");
  return rms_norm_impl("rms_norm", x, Tensor(), weight, x.size(-1), eps);
}

Tensor gated_rms_norm(const Tensor& x, const Tensor& z, const Tensor& weight, int64_t group_size,
                      double eps) {
  check_input(x, "gated_rms_norm", "(…, D) with D > 0");
  SSM_CHECK(z.defined() && z.shape() == x.shape(),
            "gated_rms_norm: argument 'z' expected shape {} (like x), got {}", shape_str(x.shape()),
            z.defined() ? shape_str(z.shape()) : "undefined");
  SSM_CHECK(z.dtype() == x.dtype(),
            "gated_rms_norm: argument 'z' expected dtype {} (like x), got {}",
            dtype_name(x.dtype()), dtype_name(z.dtype()));
  check_channel_param(weight, x, "gated_rms_norm", "weight");
  const int64_t D = x.size(-1);
  SSM_CHECK(group_size > 0 && D % group_size == 0,
            "gated_rms_norm: argument 'group_size' expected a divisor of D = {}, got {}", D,
            group_size);
  check_eps(eps, "gated_rms_norm");
  return rms_norm_impl("gated_rms_norm", x, z, weight, group_size, eps);
}

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                  Tensor& running_var, bool training, double momentum, double eps) {
  check_input(x, "batch_norm", "(B, L, D)");
  SSM_CHECK(x.dim() >= 2, "batch_norm: argument 'x' expected shape (B, L, D) or (B, D), got {}",
            shape_str(x.shape()));
  check_channel_param(weight, x, "batch_norm", "weight");
  check_channel_param(bias, x, "batch_norm", "bias");
  check_eps(eps, "batch_norm");
  SSM_CHECK(momentum >= 0 && momentum <= 1,
            "batch_norm: argument 'momentum' expected a value in [0, 1], got {}", momentum);
  // Running statistics are optional in training (then nothing is tracked), required in eval.
  SSM_CHECK(training || (running_mean.defined() && running_var.defined()),
            "batch_norm: arguments 'running_mean' and 'running_var' are required in eval mode");
  check_channel_param(running_mean, x, "batch_norm", "running_mean");
  check_channel_param(running_var, x, "batch_norm", "running_var");
  SSM_CHECK(running_mean.defined() == running_var.defined(),
            "batch_norm: arguments 'running_mean' and 'running_var' must both be given or both "
            "be undefined");
  const int64_t D = x.size(-1), rows = x.numel() / D;
  SSM_CHECK(!training || rows > 1,
            "batch_norm: training needs more than one value per channel, got x of shape {}",
            shape_str(x.shape()));

  const Tensor xc = x.detach().contiguous(), wc = detached_contiguous(weight);
  const Tensor bc = detached_contiguous(bias);
  Tensor mean = Tensor::empty({D}, DType::F64), rstd = Tensor::empty({D}, DType::F64);
  double* pm = mean.data<double>();
  double* prs = rstd.data<double>();
  SSM_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&] {
    if (training) {
      std::vector<double> var(D);
      cpu::batch_norm_stats(xc.data<scalar_t>(), rows, D, pm, var.data());
      for (int64_t d = 0; d < D; ++d) prs[d] = 1.0 / std::sqrt(var[d] + eps);
      if (running_mean.defined()) {
        // In place, through the strides, so the module's buffers see the update.
        scalar_t* rm = running_mean.data<scalar_t>();
        scalar_t* rv = running_var.data<scalar_t>();
        const int64_t sm = running_mean.stride(0), sv = running_var.stride(0);
        const double unbiased = static_cast<double>(rows) / static_cast<double>(rows - 1);
        for (int64_t d = 0; d < D; ++d) {
          rm[d * sm] = static_cast<scalar_t>((1 - momentum) * rm[d * sm] + momentum * pm[d]);
          rv[d * sv] =
              static_cast<scalar_t>((1 - momentum) * rv[d * sv] + momentum * var[d] * unbiased);
        }
      }
    } else {
      const scalar_t* rm = running_mean.data<scalar_t>();
      const scalar_t* rv = running_var.data<scalar_t>();
      const int64_t sm = running_mean.stride(0), sv = running_var.stride(0);
      for (int64_t d = 0; d < D; ++d) {
        pm[d] = rm[d * sm];
        prs[d] = 1.0 / std::sqrt(static_cast<double>(rv[d * sv]) + eps);
      }
    }
  });
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  SSM_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&] {
    cpu::batch_norm_apply(xc.data<scalar_t>(), pm, prs, ptr_or_null<scalar_t>(wc),
                          ptr_or_null<scalar_t>(bc), y.data<scalar_t>(), rows, D);
  });

  const bool need_x = x.requires_grad(), need_w = wants_grad(weight), need_b = wants_grad(bias);
  return record("batch_norm", y, {x, weight, bias},
                [xc, wc, mean, rstd, training, rows, D, need_x, need_w,
                 need_b](const std::vector<Tensor>& g) {
                  const Tensor gy = g[0].contiguous();
                  Tensor gx = empty_if(need_x, xc.shape(), xc.dtype());
                  Tensor gw = empty_if(need_w, {D}, xc.dtype());
                  Tensor gb = empty_if(need_b, {D}, xc.dtype());
                  SSM_DISPATCH_FLOAT(xc.dtype(), "batch_norm", [&] {
                    cpu::batch_norm_bwd(
                        gy.data<scalar_t>(), xc.data<scalar_t>(), mean.data<double>(),
                        rstd.data<double>(), ptr_or_null<scalar_t>(wc), training,
                        mutable_ptr_or_null<scalar_t>(gx), mutable_ptr_or_null<scalar_t>(gw),
                        mutable_ptr_or_null<scalar_t>(gb), rows, D);
                  });
                  return std::vector<Tensor>{gx, gw, gb};
                });
}

}  // namespace ssm
