#include "ssm/nn/mamba2.h"

#include <cmath>

#include "ssm/autograd/node.h"
#include "ssm/ops/conv.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/norm.h"
#include "ssm/ops/shape_ops.h"
#include "ssm/ops/ssd.h"

namespace ssm::nn {

GatedRMSNorm::GatedRMSNorm(int64_t dim, int64_t group_size_, double eps_, DType dtype)
    : group_size(group_size_), eps(eps_) {
  weight = register_parameter("weight", Tensor::ones({dim}, dtype), ParamKind::NoDecay);
}

Tensor GatedRMSNorm::forward(const Tensor& x, const Tensor& z) const {
  return gated_rms_norm(x, z, weight, group_size, eps);
}

Mamba2Mixer::Mamba2Mixer(const Mamba2Options& o, Generator& gen, DType dtype) : options(o) {
  SSM_CHECK(o.d_model > 0 && o.d_state > 0 && o.expand > 0 && o.head_dim > 0 && o.n_groups > 0,
            "Mamba2Mixer: d_model, d_state, expand, head_dim, n_groups must be positive, got "
            "d_model={} d_state={} expand={} head_dim={} n_groups={}",
            o.d_model, o.d_state, o.expand, o.head_dim, o.n_groups);
  SSM_CHECK(o.d_inner() % o.head_dim == 0,
            "Mamba2Mixer: head_dim {} expected to divide d_inner = expand · d_model = {}",
            o.head_dim, o.d_inner());
  SSM_CHECK(o.n_heads() % o.n_groups == 0,
            "Mamba2Mixer: n_groups {} expected to divide the number of heads {}", o.n_groups,
            o.n_heads());
  SSM_CHECK(o.d_conv >= 2, "Mamba2Mixer: d_conv expected >= 2, got {}", o.d_conv);
  SSM_CHECK(o.chunk_size > 0, "Mamba2Mixer: chunk_size expected > 0, got {}", o.chunk_size);
  SSM_CHECK(o.dt_min > 0 && o.dt_min <= o.dt_max,
            "Mamba2Mixer: expected 0 < dt_min <= dt_max, got dt_min={} dt_max={}", o.dt_min,
            o.dt_max);
  SSM_CHECK(o.A_init_min > 0 && o.A_init_min <= o.A_init_max,
            "Mamba2Mixer: expected 0 < A_init_min <= A_init_max, got {} and {}", o.A_init_min,
            o.A_init_max);
  SSM_CHECK(o.dt_limit_min >= 0 && o.dt_limit_min < o.dt_limit_max,
            "Mamba2Mixer: expected 0 <= dt_limit_min < dt_limit_max, got {} and {}", o.dt_limit_min,
            o.dt_limit_max);
  SSM_CHECK(o.norm_eps > 0, "Mamba2Mixer: norm_eps expected > 0, got {}", o.norm_eps);
  const int64_t Di = o.d_inner(), H = o.n_heads();
  in_proj = register_module(
      "in_proj", std::make_shared<Linear>(o.d_model, Di + o.conv_dim() + H, false, gen, dtype));
  conv1d = register_module("conv1d",
                           std::make_shared<DepthwiseConv1d>(o.conv_dim(), o.d_conv, gen, dtype));
  // Per head: Δ starts log-uniform in [dt_min, dt_max] (floored) after the softplus, so the bias
  // is softplus⁻¹(dt) = dt + log(1 − e^{−dt}); A = −U[A_init_min, A_init_max]; D = 1.
  Tensor bias = Tensor::empty({H}, DType::F64), a_log = Tensor::empty({H}, DType::F64);
  const double lo = std::log(o.dt_min), hi = std::log(o.dt_max);
  for (int64_t h = 0; h < H; ++h) {
    const double dt = std::max(std::exp(lo + (hi - lo) * gen.uniform()), o.dt_init_floor);
    bias.set({h}, dt + std::log(-std::expm1(-dt)));
  }
  for (int64_t h = 0; h < H; ++h)
    a_log.set({h}, std::log(o.A_init_min + (o.A_init_max - o.A_init_min) * gen.uniform()));
  dt_bias = register_parameter("dt_bias", bias.to(dtype), ParamKind::SSM);
  A_log = register_parameter("A_log", a_log.to(dtype), ParamKind::SSM);
  D = register_parameter("D", Tensor::ones({H}, dtype), ParamKind::SSM);
  norm = register_module("norm",
                         std::make_shared<GatedRMSNorm>(Di, Di / o.n_groups, o.norm_eps, dtype));
  out_proj =
      register_module("out_proj", std::make_shared<Linear>(Di, o.d_model, false, gen, dtype));
}

Tensor Mamba2Mixer::delta(const Tensor& dt_raw) const {
  Tensor dt = softplus(dt_raw + dt_bias);
  // Clamp written with relu, max(v, lo) = lo + relu(v − lo) and min(v, hi) = hi − relu(hi − v),
  // so the gradient is that of the clamp; skipped for the default (no-op) range.
  if (options.dt_limit_min > 0) dt = relu(dt - options.dt_limit_min) + options.dt_limit_min;
  if (std::isfinite(options.dt_limit_max))
    dt = options.dt_limit_max - relu(options.dt_limit_max - dt);
  return dt;
}

Tensor Mamba2Mixer::forward(const Tensor& x) const {
  return run(x, nullptr);
}

Tensor Mamba2Mixer::prefill(const Tensor& x, MixerCache& cache) const {
  NoGradGuard no_grad;
  return run(x, &cache);
}

MixerCache Mamba2Mixer::init_cache(int64_t batch) const {
  SSM_CHECK(batch > 0, "Mamba2Mixer.init_cache: batch expected > 0, got {}", batch);
  const auto& o = options;
  MixerCache cache;
  cache.set("conv_state",
            Tensor::zeros({batch, o.conv_dim(), o.d_conv - 1}, dtype(), A_log.device()));
  cache.set("ssm_state",
            Tensor::zeros({batch, o.n_heads(), o.head_dim, o.d_state}, dtype(), A_log.device()));
  return cache;
}

Tensor Mamba2Mixer::run(const Tensor& x, MixerCache* cache) const {
  const auto& o = options;
  const int64_t Di = o.d_inner(), H = o.n_heads(), P = o.head_dim, G = o.n_groups, N = o.d_state;
  const int64_t Cd = o.conv_dim(), K = o.d_conv;
  SSM_CHECK(x.dim() == 3 && x.size(2) == o.d_model && x.size(0) > 0 && x.size(1) > 0,
            "Mamba2Mixer.forward: argument 'x' expected shape (B, L, {}) with B, L > 0, got {}",
            o.d_model, shape_str(x.shape()));
  SSM_CHECK(x.dtype() == dtype(), "Mamba2Mixer.forward: argument 'x' expected dtype {}, got {}",
            dtype_name(dtype()), dtype_name(x.dtype()));
  const int64_t batch = x.size(0), L = x.size(1);

  const std::vector<Tensor> zxd = split(in_proj->forward(x), {Di, Cd, H}, 2);
  const Tensor xbc_raw = zxd[1].transpose(1, 2);  // (B, Cd, L)
  const Tensor xbc =
      silu(causal_conv1d(xbc_raw, conv1d->weight.view({Cd, K}), conv1d->bias)).transpose(1, 2);
  const std::vector<Tensor> xBC = split(xbc, {Di, G * N, G * N}, 2);
  const Tensor dt = delta(zxd[2]);  // (B, L, H)

  SsdOptions ssd_options;
  ssd_options.D = D;
  ssd_options.chunk_size = o.chunk_size;
  const SsdResult r =
      ssd(xBC[0].reshape({batch, L, H, P}), dt, neg(exp(A_log)), xBC[1].reshape({batch, L, G, N}),
          xBC[2].reshape({batch, L, G, N}), ssd_options);
  const Tensor y = norm->forward(r.y.reshape({batch, L, Di}), zxd[0]);

  if (cache) {
    // The last K − 1 conv inputs, zeros where the sequence was shorter.
    Tensor conv_state = Tensor::zeros({batch, Cd, K - 1}, dtype(), A_log.device());
    const int64_t kept = std::min(L, K - 1);
    conv_state.narrow(2, K - 1 - kept, kept).copy_(xbc_raw.detach().narrow(2, L - kept, kept));
    cache->tensors.clear();
    cache->set("conv_state", conv_state);
    cache->set("ssm_state", r.final_state.detach().contiguous().clone());
  }
  return out_proj->forward(y);
}

Tensor Mamba2Mixer::step(const Tensor& x_t, MixerCache& cache) const {
  NoGradGuard no_grad;
  const auto& o = options;
  const int64_t Di = o.d_inner(), H = o.n_heads(), P = o.head_dim, G = o.n_groups, N = o.d_state;
  const int64_t Cd = o.conv_dim(), K = o.d_conv;
  SSM_CHECK(x_t.dim() == 2 && x_t.size(1) == o.d_model,
            "Mamba2Mixer.step: argument 'x_t' expected shape (B, {}), got {}", o.d_model,
            shape_str(x_t.shape()));
  SSM_CHECK(x_t.dtype() == dtype(), "Mamba2Mixer.step: argument 'x_t' expected dtype {}, got {}",
            dtype_name(dtype()), dtype_name(x_t.dtype()));
  const int64_t batch = x_t.size(0);
  Tensor& conv_state =
      checked_cache_entry(cache, "conv_state", {batch, Cd, K - 1}, dtype(), "Mamba2Mixer.step");
  Tensor& ssm_state =
      checked_cache_entry(cache, "ssm_state", {batch, H, P, N}, dtype(), "Mamba2Mixer.step");

  const std::vector<Tensor> zxd = split(in_proj->forward(x_t), {Di, Cd, H}, 1);
  const Tensor xbc =
      silu(causal_conv1d_update(zxd[1], conv_state, conv1d->weight.view({Cd, K}), conv1d->bias));
  const std::vector<Tensor> xBC = split(xbc, {Di, G * N, G * N}, 1);
  const Tensor dt = delta(zxd[2]);  // (B, H)
  const Tensor y =
      ssd_state_update(ssm_state, xBC[0].reshape({batch, H, P}), dt, neg(exp(A_log)),
                       xBC[1].reshape({batch, G, N}), xBC[2].reshape({batch, G, N}), D);
  return out_proj->forward(norm->forward(y.reshape({batch, Di}), zxd[0]));
}

}  // namespace ssm::nn
