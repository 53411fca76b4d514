#include "ssm/nn/mamba.h"

#include <cmath>

#include "ssm/autograd/node.h"
#include "ssm/ops/conv.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/linear.h"
#include "ssm/ops/selective_scan.h"
#include "ssm/ops/shape_ops.h"

namespace ssm::nn {

DepthwiseConv1d::DepthwiseConv1d(int64_t channels, int64_t width, Generator& gen, DType dtype) {
  // PyTorch's Conv1d default with groups = channels: fan_in = width, U(±1/√fan_in).
  const double bound = 1.0 / std::sqrt(static_cast<double>(width));
  weight =
      register_parameter("weight", rand_uniform({channels, 1, width}, -bound, bound, dtype, &gen));
  bias = register_parameter("bias", rand_uniform({channels}, -bound, bound, dtype, &gen),
                            ParamKind::NoDecay);
}

DtProjection::DtProjection(const MambaOptions& o, Generator& gen, DType dtype) {
  const int64_t R = o.resolved_dt_rank(), Di = o.d_inner();
  const double bound = 1.0 / std::sqrt(static_cast<double>(R));
  weight = register_parameter("weight", rand_uniform({Di, R}, -bound, bound, dtype, &gen));
  // Δ starts log-uniform in [dt_min, dt_max] after the scan's softplus: bias = softplus⁻¹(dt)
  // = dt + log(1 − e^{−dt}), written with expm1 so small dt keeps its precision.
  Tensor b = Tensor::empty({Di}, DType::F64);
  const double lo = std::log(o.dt_min), hi = std::log(o.dt_max);
  for (int64_t d = 0; d < Di; ++d) {
    const double dt = std::max(std::exp(lo + (hi - lo) * gen.uniform()), o.dt_init_floor);
    b.set({d}, dt + std::log(-std::expm1(-dt)));
  }
  bias = register_parameter("bias", b.to(dtype), ParamKind::SSM);
}

MambaMixer::MambaMixer(const MambaOptions& o, Generator& gen, DType dtype) : options(o) {
  SSM_CHECK(
      o.d_model > 0 && o.d_state > 0 && o.expand > 0 && o.dt_rank >= 0,
      "MambaMixer: d_model, d_state, expand must be positive and dt_rank >= 0, got d_model={} "
      "d_state={} expand={} dt_rank={}",
      o.d_model, o.d_state, o.expand, o.dt_rank);
  SSM_CHECK(o.d_conv >= 2, "MambaMixer: d_conv expected >= 2, got {}", o.d_conv);
  SSM_CHECK(o.dt_min > 0 && o.dt_min <= o.dt_max,
            "MambaMixer: expected 0 < dt_min <= dt_max, got dt_min={} dt_max={}", o.dt_min,
            o.dt_max);
  const int64_t Di = o.d_inner(), N = o.d_state, R = o.resolved_dt_rank();
  in_proj =
      register_module("in_proj", std::make_shared<Linear>(o.d_model, 2 * Di, false, gen, dtype));
  conv1d = register_module("conv1d", std::make_shared<DepthwiseConv1d>(Di, o.d_conv, gen, dtype));
  x_proj = register_module("x_proj", std::make_shared<Linear>(Di, R + 2 * N, false, gen, dtype));
  dt_proj = register_module("dt_proj", std::make_shared<DtProjection>(o, gen, dtype));
  out_proj =
      register_module("out_proj", std::make_shared<Linear>(Di, o.d_model, false, gen, dtype));
  // S4D-Real init: A = −(1..N) in every channel.
  Tensor a_log = Tensor::empty({Di, N}, DType::F64);
  for (int64_t d = 0; d < Di; ++d)
    for (int64_t n = 0; n < N; ++n) a_log.set({d, n}, std::log(static_cast<double>(n + 1)));
  A_log = register_parameter("A_log", a_log.to(dtype), ParamKind::SSM);
  D = register_parameter("D", Tensor::ones({Di}, dtype), ParamKind::SSM);
}

Tensor MambaMixer::forward(const Tensor& x) const {
  return run(x, nullptr);
}

Tensor MambaMixer::prefill(const Tensor& x, MambaCache& cache) const {
  NoGradGuard no_grad;
  return run(x, &cache);
}

MambaCache MambaMixer::init_cache(int64_t batch) const {
  SSM_CHECK(batch > 0, "MambaMixer.init_cache: batch expected > 0, got {}", batch);
  MambaCache cache;
  cache.set("conv_state",
            Tensor::zeros({batch, options.d_inner(), options.d_conv - 1}, dtype(), A_log.device()));
  cache.set("ssm_state",
            Tensor::zeros({batch, options.d_inner(), options.d_state}, dtype(), A_log.device()));
  return cache;
}

Tensor MambaMixer::run(const Tensor& x, MambaCache* cache) const {
  const int64_t Di = options.d_inner(), N = options.d_state, R = options.resolved_dt_rank();
  const int64_t K = options.d_conv;
  SSM_CHECK(x.dim() == 3 && x.size(2) == options.d_model && x.size(0) > 0 && x.size(1) > 0,
            "MambaMixer.forward: argument 'x' expected shape (B, L, {}) with B, L > 0, got {}",
            options.d_model, shape_str(x.shape()));
  SSM_CHECK(x.dtype() == dtype(), "MambaMixer.forward: argument 'x' expected dtype {}, got {}",
            dtype_name(dtype()), dtype_name(x.dtype()));
  const int64_t batch = x.size(0), L = x.size(1);

  const std::vector<Tensor> xz = split(in_proj->forward(x), {Di, Di}, 2);  // (B, L, Di) each
  const Tensor x_in = xz[0].transpose(1, 2);                               // (B, Di, L)
  const Tensor z = xz[1].transpose(1, 2);
  const Tensor u = silu(causal_conv1d(x_in, conv1d->weight.view({Di, K}), conv1d->bias));

  const Tensor x_dbl = x_proj->forward(u.transpose(1, 2));  // (B, L, R + 2N)
  const std::vector<Tensor> dbc = split(x_dbl, {R, N, N}, 2);
  const Tensor delta = linear(dbc[0], dt_proj->weight).transpose(1, 2);  // (B, Di, L)
  const Tensor B = dbc[1].transpose(1, 2).unsqueeze(1);                  // (B, 1, N, L)
  const Tensor C = dbc[2].transpose(1, 2).unsqueeze(1);

  SelectiveScanOptions scan;
  scan.D = D;
  scan.z = z;
  scan.delta_bias = dt_proj->bias;  // softplus(W·Δ + b) inside the fused scan
  scan.delta_softplus = true;
  const SelectiveScanResult r = selective_scan(u, delta, neg(exp(A_log)), B, C, scan);

  if (cache) {
    // The conv state holds the last K − 1 conv inputs, zeros where the sequence was shorter.
    const Tensor raw = x_in.detach();
    Tensor conv_state = Tensor::zeros({batch, Di, K - 1}, dtype(), A_log.device());
    const int64_t kept = std::min(L, K - 1);
    conv_state.narrow(2, K - 1 - kept, kept).copy_(raw.narrow(2, L - kept, kept));
    cache->tensors.clear();
    cache->derived.clear();
    cache->set("conv_state", conv_state);
    cache->set("ssm_state", r.last_state.detach().clone());
  }
  return out_proj->forward(r.out.transpose(1, 2));
}

Tensor MambaMixer::step(const Tensor& x_t, MambaCache& cache) const {
  NoGradGuard no_grad;
  const int64_t Di = options.d_inner(), N = options.d_state, R = options.resolved_dt_rank();
  SSM_CHECK(x_t.dim() == 2 && x_t.size(1) == options.d_model,
            "MambaMixer.step: argument 'x_t' expected shape (B, {}), got {}", options.d_model,
            shape_str(x_t.shape()));
  SSM_CHECK(x_t.dtype() == dtype(), "MambaMixer.step: argument 'x_t' expected dtype {}, got {}",
            dtype_name(dtype()), dtype_name(x_t.dtype()));
  const int64_t batch = x_t.size(0);
  Tensor& conv_state = checked_cache_entry(cache, "conv_state", {batch, Di, options.d_conv - 1},
                                           dtype(), "MambaMixer.step");
  Tensor& ssm_state =
      checked_cache_entry(cache, "ssm_state", {batch, Di, N}, dtype(), "MambaMixer.step");

  const std::vector<Tensor> xz = split(in_proj->forward(x_t), {Di, Di}, 1);  // (B, Di) each
  const Tensor u = silu(causal_conv1d_update(
      xz[0], conv_state, conv1d->weight.view({Di, options.d_conv}), conv1d->bias));
  const std::vector<Tensor> dbc = split(x_proj->forward(u), {R, N, N}, 1);
  const Tensor dt = linear(dbc[0], dt_proj->weight);  // (B, Di)
  // D_inner·N exponentials that would otherwise be recomputed at every token of every layer.
  const Tensor& A = cache.derived_value("A", [&] { return neg(exp(A_log)); });
  const Tensor y =
      selective_state_update(ssm_state, u, dt, A, dbc[1].unsqueeze(1), dbc[2].unsqueeze(1), D,
                             xz[1], dt_proj->bias, /*dt_softplus=*/true);
  return out_proj->forward(y);
}

}  // namespace ssm::nn
