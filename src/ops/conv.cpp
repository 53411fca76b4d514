// Autograd wrappers for the sequence convolutions: argument checks, dtype dispatch, and the
// backward rules (which call the same kernels' backward halves).
#include "ssm/ops/conv.h"

#include <complex>

#include "kernels/cpu/causal_conv1d.h"
#include "kernels/cpu/fft_conv.h"
#include "ops/cuda_conv.h"
#include "ssm/autograd/node.h"

namespace ssm {

namespace kc = kernels::cpu;

namespace {

// The checks every argument of these ops shares: a defined float tensor of the expected rank
// on `device` (the CPU unless the op has a CUDA kernel and its main input is on the GPU) with the
// same dtype as the op's main input.
void check_float_cpu(const char* op, const char* arg, const Tensor& t, const char* layout,
                     int64_t rank, Device device = Device::CPU) {
  SSM_CHECK(t.defined(), "{}: argument '{}' expected shape {}, got an undefined tensor", op, arg,
            layout);
  SSM_CHECK(t.dim() == rank, "{}: argument '{}' expected shape {}, got {}", op, arg, layout,
            shape_str(t.shape()));
  SSM_CHECK(t.device() == device, "{}: argument '{}' expected a {} tensor, got {}", op, arg,
            device == Device::CPU ? "CPU" : "cuda", device_name(t.device()));
  SSM_CHECK(is_floating(t.dtype()), "{}: argument '{}' expected float32 or float64, got {}", op,
            arg, dtype_name(t.dtype()));
}

void check_same_dtype(const char* op, const char* arg, const Tensor& t, const Tensor& main,
                      const char* main_name) {
  SSM_CHECK(t.dtype() == main.dtype(), "{}: argument '{}' expected dtype {} (as '{}'), got {}", op,
            arg, dtype_name(main.dtype()), main_name, dtype_name(t.dtype()));
}

// weight (D, k) and bias (D) against the channel count D.
void check_conv_weights(const char* op, const Tensor& weight, const Tensor& bias, int64_t D,
                        const Tensor& x, const char* x_name) {
  check_float_cpu(op, "weight", weight, "(D, k)", 2, x.device());
  check_same_dtype(op, "weight", weight, x, x_name);
  SSM_CHECK(weight.size(0) == D && weight.size(1) >= 1,
            "{}: argument 'weight' expected shape (D, k) = ({}, k ≥ 1), got {}", op, D,
            shape_str(weight.shape()));
  if (bias.defined()) {
    check_float_cpu(op, "bias", bias, "(D)", 1, x.device());
    check_same_dtype(op, "bias", bias, x, x_name);
    SSM_CHECK(bias.size(0) == D, "{}: argument 'bias' expected shape ({}), got {}", op, D,
              shape_str(bias.shape()));
  }
}

}  // namespace

Tensor causal_conv1d(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in) {
  constexpr const char* op = "causal_conv1d";
  const Device device = x_in.defined() ? x_in.device() : Device::CPU;
  check_float_cpu(op, "x", x_in, "(B, D, L)", 3, device);
  const int64_t B = x_in.size(0), D = x_in.size(1), L = x_in.size(2);
  check_conv_weights(op, weight_in, bias_in, D, x_in, "x");
  const int64_t K = weight_in.size(1);
  if (device == Device::CUDA) return cuda_causal_conv1d(x_in, weight_in, bias_in);

  const Tensor x = x_in.contiguous(), weight = weight_in.contiguous();
  const Tensor bias = bias_in.defined() ? bias_in.contiguous() : Tensor();
  Tensor y = Tensor::empty({B, D, L}, x.dtype());
  SSM_DISPATCH_FLOAT(x.dtype(), op, [&] {
    kc::causal_conv1d_fwd<scalar_t>(x.data<scalar_t>(), weight.data<scalar_t>(),
                                    bias.defined() ? bias.data<scalar_t>() : nullptr,
                                    y.data<scalar_t>(), B, D, L, K);
  });

  const bool want_x = x_in.requires_grad(), want_w = weight_in.requires_grad(),
             want_b = bias_in.defined() && bias_in.requires_grad();
  const Tensor xs = x.detach(), ws = weight.detach();
  return record(op, y, {x_in, weight_in, bias_in},
                [=](const std::vector<Tensor>& grads) -> std::vector<Tensor> {
                  const Tensor dy = grads[0].contiguous();
                  Tensor dx = want_x ? Tensor::empty(xs.shape(), xs.dtype()) : Tensor();
                  Tensor dw = want_w ? Tensor::empty(ws.shape(), ws.dtype()) : Tensor();
                  Tensor db = want_b ? Tensor::empty({D}, xs.dtype()) : Tensor();
                  SSM_DISPATCH_FLOAT(xs.dtype(), op, [&] {
                    auto ptr = [](const Tensor& t) {
                      return t.defined() ? t.data<scalar_t>() : nullptr;
                    };
                    kc::causal_conv1d_bwd<scalar_t>(ptr(dy), ptr(xs), ptr(ws), ptr(dx), ptr(dw),
                                                    ptr(db), B, D, L, K);
                  });
                  return {dx, dw, db};
                });
}

Tensor causal_conv1d_update(const Tensor& x_t_in, Tensor& conv_state, const Tensor& weight_in,
                            const Tensor& bias_in) {
  constexpr const char* op = "causal_conv1d_update";
  const Device device = x_t_in.defined() ? x_t_in.device() : Device::CPU;
  check_float_cpu(op, "x_t", x_t_in, "(B, D)", 2, device);
  const int64_t B = x_t_in.size(0), D = x_t_in.size(1);
  check_conv_weights(op, weight_in, bias_in, D, x_t_in, "x_t");
  const int64_t K = weight_in.size(1);
  check_float_cpu(op, "conv_state", conv_state, "(B, D, k−1)", 3, device);
  check_same_dtype(op, "conv_state", conv_state, x_t_in, "x_t");
  SSM_CHECK(conv_state.shape() == Shape({B, D, K - 1}),
            "{}: argument 'conv_state' expected shape (B, D, k−1) = ({}, {}, {}), got {}", op, B, D,
            K - 1, shape_str(conv_state.shape()));
  SSM_CHECK(conv_state.is_contiguous(),
            "{}: argument 'conv_state' must be contiguous (it is updated in place), got strides {}",
            op, shape_str(conv_state.strides()));

  if (device == Device::CUDA)
    return cuda_causal_conv1d_update(x_t_in, conv_state, weight_in, bias_in);

  const Tensor x_t = x_t_in.contiguous(), weight = weight_in.contiguous();
  const Tensor bias = bias_in.defined() ? bias_in.contiguous() : Tensor();
  Tensor y_t = Tensor::empty({B, D}, x_t.dtype());
  SSM_DISPATCH_FLOAT(x_t.dtype(), op, [&] {
    kc::causal_conv1d_update<scalar_t>(
        x_t.data<scalar_t>(), conv_state.data<scalar_t>(), weight.data<scalar_t>(),
        bias.defined() ? bias.data<scalar_t>() : nullptr, y_t.data<scalar_t>(), B, D, K);
  });
  return y_t;
}

Tensor fft_conv(const Tensor& u_in, const Tensor& k_in, const Tensor& skip_in) {
  constexpr const char* op = "fft_conv";
  check_float_cpu(op, "u", u_in, "(B, H, L)", 3);
  const int64_t B = u_in.size(0), H = u_in.size(1), L = u_in.size(2);
  check_float_cpu(op, "k", k_in, "(H, L)", 2);
  check_same_dtype(op, "k", k_in, u_in, "u");
  SSM_CHECK(k_in.size(0) == H && k_in.size(1) == L,
            "{}: argument 'k' expected shape (H, L) = ({}, {}), got {}", op, H, L,
            shape_str(k_in.shape()));
  if (skip_in.defined()) {
    check_float_cpu(op, "skip", skip_in, "(H)", 1);
    check_same_dtype(op, "skip", skip_in, u_in, "u");
    SSM_CHECK(skip_in.size(0) == H, "{}: argument 'skip' expected shape (H) = ({}), got {}", op, H,
              shape_str(skip_in.shape()));
  }

  const Tensor u = u_in.contiguous(), k = k_in.contiguous();
  const Tensor skip = skip_in.defined() ? skip_in.contiguous() : Tensor();
  const bool want_u = u_in.requires_grad(), want_k = k_in.requires_grad(),
             want_skip = skip_in.defined() && skip_in.requires_grad();
  // dk correlates dy with u, so when it will be needed the forward keeps the spectra of u
  // it computes anyway ((B, H, S) complex bins as pairs of reals) and the backward skips
  // one transform per row. Without a backward for k this is memory for nothing.
  const bool save_spectra = want_k && grad_mode_enabled();
  const int64_t S = kc::fft_conv_spectrum_size(L);
  Tensor u_spectra = save_spectra ? Tensor::empty({B, H, S, 2}, u.dtype()) : Tensor();
  Tensor y = Tensor::empty({B, H, L}, u.dtype());
  SSM_DISPATCH_FLOAT(u.dtype(), op, [&] {
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<scalar_t>() : nullptr; };
    kc::fft_conv_fwd<scalar_t>(u.data<scalar_t>(), k.data<scalar_t>(), ptr(skip),
                               y.data<scalar_t>(),
                               reinterpret_cast<std::complex<scalar_t>*>(ptr(u_spectra)), B, H, L);
  });

  const Tensor us = u.detach(), ks = k.detach();
  const Tensor skips = skip.defined() ? skip.detach() : Tensor();
  return record(
      op, y, {u_in, k_in, skip_in}, [=](const std::vector<Tensor>& grads) -> std::vector<Tensor> {
        const Tensor dy = grads[0].contiguous();
        Tensor du = want_u ? Tensor::empty(us.shape(), us.dtype()) : Tensor();
        Tensor dk = want_k ? Tensor::empty(ks.shape(), ks.dtype()) : Tensor();
        Tensor dskip = want_skip ? Tensor::empty({H}, us.dtype()) : Tensor();
        SSM_DISPATCH_FLOAT(us.dtype(), op, [&] {
          auto ptr = [](const Tensor& t) { return t.defined() ? t.data<scalar_t>() : nullptr; };
          // std::complex<T> is layout-compatible with T[2] ([complex.numbers]).
          kc::fft_conv_bwd<scalar_t>(
              ptr(dy), ptr(us), reinterpret_cast<const std::complex<scalar_t>*>(ptr(u_spectra)),
              ptr(ks), ptr(skips), ptr(du), ptr(dk), ptr(dskip), B, H, L);
        });
        return {du, dk, dskip};
      });
}

}  // namespace ssm
