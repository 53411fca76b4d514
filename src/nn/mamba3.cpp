#include "ssm/nn/mamba3.h"

#include <cmath>
#include <numbers>

#include "ssm/autograd/node.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/mamba3_rotary.h"
#include "ssm/ops/mamba3_scan.h"
#include "ssm/ops/norm.h"
#include "ssm/ops/shape_ops.h"

namespace ssm::nn {

int64_t Mamba3Options::n_angles() const {
  // As the reference: ⌊N·rope_fraction⌋, made even, one angle per pair.
  int64_t rotated = static_cast<int64_t>(static_cast<double>(d_state) * rope_fraction);
  if (rotated % 2 != 0) --rotated;
  return rotated / 2;
}

// The in_proj output split, shaped per head and activated; `lead` is (B, L) for a sequence,
// (B) for one token.
struct Mamba3Mixer::Projected {
  Tensor z, x;        // (…, H, P)
  Tensor B, C;        // (…, H, N): normalised per group, plus the per-head bias; not rotated
  Tensor dt, A, lam;  // (…, H)
  Tensor theta;       // (…, H, S): the angle rates, the same for every head
};

Mamba3Mixer::Mamba3Mixer(const Mamba3Options& o, Generator& gen, DType dtype) : options(o) {
  SSM_CHECK(o.d_model > 0 && o.d_state > 0 && o.expand > 0 && o.head_dim > 0 && o.n_groups > 0,
            "Mamba3Mixer: d_model, d_state, expand, head_dim, n_groups must be positive, got "
            "d_model={} d_state={} expand={} head_dim={} n_groups={}",
            o.d_model, o.d_state, o.expand, o.head_dim, o.n_groups);
  SSM_CHECK(o.d_inner() % o.head_dim == 0,
            "Mamba3Mixer: D_inner = expand·d_model = {} is not a multiple of head_dim = {}",
            o.d_inner(), o.head_dim);
  SSM_CHECK(o.n_heads() % o.n_groups == 0,
            "Mamba3Mixer: n_groups = {} does not divide the {} heads", o.n_groups, o.n_heads());
  SSM_CHECK(o.rope_fraction > 0 && o.rope_fraction <= 1 && o.n_angles() > 0,
            "Mamba3Mixer: rope_fraction expected in (0, 1] leaving at least one rotated pair of "
            "the d_state = {} entries, got {}",
            o.d_state, o.rope_fraction);
  SSM_CHECK(o.dt_min > 0 && o.dt_min <= o.dt_max,
            "Mamba3Mixer: expected 0 < dt_min <= dt_max, got dt_min={} dt_max={}", o.dt_min,
            o.dt_max);
  SSM_CHECK(o.A_floor > 0, "Mamba3Mixer: A_floor expected > 0, got {}", o.A_floor);
  SSM_CHECK(o.chunk_size > 0, "Mamba3Mixer: chunk_size expected > 0, got {}", o.chunk_size);
  const int64_t H = o.n_heads(), N = o.d_state;
  in_proj = register_module("in_proj",
                            std::make_shared<Linear>(o.d_model, o.d_in_proj(), false, gen, dtype));
  // Δ starts log-uniform in [dt_min, dt_max] after the softplus: dt_bias = softplus⁻¹(dt)
  // = dt + log(1 − e^{−dt}), written with expm1 so small dt keeps its precision.
  Tensor b = Tensor::empty({H}, DType::F64);
  const double lo = std::log(o.dt_min), hi = std::log(o.dt_max);
  for (int64_t h = 0; h < H; ++h) {
    const double dt = std::max(std::exp(lo + (hi - lo) * gen.uniform()), o.dt_init_floor);
    b.set({h}, dt + std::log(-std::expm1(-dt)));
  }
  dt_bias = register_parameter("dt_bias", b.to(dtype), ParamKind::SSM);
  B_bias = register_parameter("B_bias", Tensor::ones({H, 1, N}, dtype), ParamKind::NoDecay);
  C_bias = register_parameter("C_bias", Tensor::ones({H, 1, N}, dtype), ParamKind::NoDecay);
  B_norm = register_module("B_norm", std::make_shared<RMSNorm>(N, o.norm_eps, dtype));
  C_norm = register_module("C_norm", std::make_shared<RMSNorm>(N, o.norm_eps, dtype));
  D = register_parameter("D", Tensor::ones({H}, dtype), ParamKind::SSM);
  out_proj = register_module("out_proj",
                             std::make_shared<Linear>(o.d_inner(), o.d_model, false, gen, dtype));
}

Mamba3Mixer::Projected Mamba3Mixer::project(const Tensor& h, bool sequence) const {
  const int64_t H = options.n_heads(), P = options.head_dim, N = options.d_state;
  const int64_t G = options.n_groups, S = options.n_angles(), Di = options.d_inner();
  const int64_t last = sequence ? 2 : 1;
  Shape lead = {h.size(0)};
  if (sequence) lead.push_back(h.size(1));
  auto shaped = [&](const Tensor& t, std::initializer_list<int64_t> tail) {
    Shape s = lead;
    s.insert(s.end(), tail);
    return t.reshape(s);
  };
  const std::vector<Tensor> parts =
      split(in_proj->forward(h), {Di, Di, G * N, G * N, H, H, H, S}, last);

  // Normalised within each group, then the per-head bias: head h reads group h / (H / G).
  auto per_head = [&](const Tensor& raw, const RMSNorm& norm, const Tensor& bias) {
    const Tensor grouped = norm.forward(shaped(raw, {G, N}));                // (…, G, N)
    const Tensor biased = grouped.unsqueeze(-2) + bias.view({G, H / G, N});  // (…, G, H/G, N)
    return shaped(biased, {H, N});
  };
  Projected p;
  p.z = shaped(parts[0], {H, P});
  p.x = shaped(parts[1], {H, P});
  p.B = per_head(parts[2], *B_norm, B_bias);
  p.C = per_head(parts[3], *C_norm, C_bias);
  p.dt = softplus(parts[4] + dt_bias);
  // A = −max(softplus(dd_A), A_floor), the clamp written as A_floor + relu(· − A_floor).
  p.A = neg(relu(softplus(parts[5]) - options.A_floor) + options.A_floor);
  p.lam = sigmoid(parts[6]);
  Shape theta_shape = lead;
  theta_shape.insert(theta_shape.end(), {H, S});
  p.theta = (tanh(parts[7]) * std::numbers::pi).unsqueeze(-2).expand(theta_shape);
  return p;
}

Tensor Mamba3Mixer::forward(const Tensor& x) const {
  return run(x, nullptr);
}

Tensor Mamba3Mixer::prefill(const Tensor& x, MixerCache& cache) const {
  NoGradGuard no_grad;
  return run(x, &cache);
}

MixerCache Mamba3Mixer::init_cache(int64_t batch) const {
  SSM_CHECK(batch > 0, "Mamba3Mixer.init_cache: batch expected > 0, got {}", batch);
  const int64_t H = options.n_heads(), P = options.head_dim, N = options.d_state;
  MixerCache cache;
  cache.set("angle_state", Tensor::zeros({batch, H, options.n_angles()}, dtype()));
  cache.set("ssm_state", Tensor::zeros({batch, H, P, N}, dtype()));
  cache.set("k_state", Tensor::zeros({batch, H, N}, dtype()));
  cache.set("v_state", Tensor::zeros({batch, H, P}, dtype()));
  return cache;
}

Tensor Mamba3Mixer::run(const Tensor& x, MixerCache* cache) const {
  SSM_CHECK(x.dim() == 3 && x.size(2) == options.d_model && x.size(0) > 0 && x.size(1) > 0,
            "Mamba3Mixer.forward: argument 'x' expected shape (B, L, {}) with B, L > 0, got {}",
            options.d_model, shape_str(x.shape()));
  SSM_CHECK(x.dtype() == dtype(), "Mamba3Mixer.forward: argument 'x' expected dtype {}, got {}",
            dtype_name(dtype()), dtype_name(x.dtype()));
  const int64_t batch = x.size(0), L = x.size(1);

  const Projected p = project(x, /*sequence=*/true);
  const Mamba3RotaryResult B = mamba3_rotary(p.B, p.dt, p.theta);
  const Mamba3RotaryResult C = mamba3_rotary(p.C, p.dt, p.theta);
  const Mamba3ScanResult r =
      mamba3_scan(p.x, p.dt, p.A, p.lam, B.out, C.out, {.D = D, .chunk_size = options.chunk_size});
  const Tensor y = (r.y * silu(p.z)).reshape({batch, L, options.d_inner()});

  if (cache) {
    cache->tensors.clear();
    cache->set("angle_state", B.angle.detach().clone());
    cache->set("ssm_state", r.final_state.detach().clone());
    cache->set("k_state", B.out.select(1, L - 1).detach().clone());
    cache->set("v_state", p.x.select(1, L - 1).detach().clone());
  }
  return out_proj->forward(y);
}

Tensor Mamba3Mixer::step(const Tensor& x_t, MixerCache& cache) const {
  NoGradGuard no_grad;
  const char* op = "Mamba3Mixer.step";
  SSM_CHECK(x_t.dim() == 2 && x_t.size(1) == options.d_model && x_t.size(0) > 0,
            "{}: argument 'x_t' expected shape (B, {}), got {}", op, options.d_model,
            shape_str(x_t.shape()));
  SSM_CHECK(x_t.dtype() == dtype(), "{}: argument 'x_t' expected dtype {}, got {}", op,
            dtype_name(dtype()), dtype_name(x_t.dtype()));
  const int64_t batch = x_t.size(0), H = options.n_heads(), P = options.head_dim;
  const int64_t N = options.d_state;
  Tensor& angle =
      checked_cache_entry(cache, "angle_state", {batch, H, options.n_angles()}, dtype(), op);
  Tensor& ssm_state = checked_cache_entry(cache, "ssm_state", {batch, H, P, N}, dtype(), op);
  Tensor& k_state = checked_cache_entry(cache, "k_state", {batch, H, N}, dtype(), op);
  Tensor& v_state = checked_cache_entry(cache, "v_state", {batch, H, P}, dtype(), op);

  const Projected p = project(x_t, /*sequence=*/false);
  // B and C turn by the same new angle; the cache takes it after both.
  const Mamba3RotaryResult B = mamba3_rotary_step(p.B, p.dt, p.theta, angle);
  const Mamba3RotaryResult C = mamba3_rotary_step(p.C, p.dt, p.theta, angle);
  angle.copy_(B.angle);
  const Tensor y =
      mamba3_state_update(ssm_state, k_state, v_state, p.x, p.dt, p.A, p.lam, B.out, C.out, D);
  return out_proj->forward((y * silu(p.z)).reshape({batch, options.d_inner()}));
}

}  // namespace ssm::nn
