#include "ssm/optim/adamw.h"

#include <cmath>
#include <set>

#include "ssm/autograd/node.h"

#ifdef SSM_WITH_CUDA
#include "core/cuda/check.h"
#include "kernels/cuda/adamw.h"
#endif

namespace ssm::optim {

namespace {

// The per-update scalars, computed in double and rounded once to the stored type; both backends
// take them from here, so CPU and CUDA apply the same constants.
template <typename scalar_t>
struct Coefficients {
  scalar_t b1, b2, one_b1, one_b2, decay, step_size, inv_sqrt_bias2, eps;
};

template <typename scalar_t>
Coefficients<scalar_t> coefficients(double lr, double weight_decay, const AdamWOptions& o,
                                    int64_t step) {
  const double bias1 = 1.0 - std::pow(o.beta1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(o.beta2, static_cast<double>(step));
  auto c = [](double x) { return static_cast<scalar_t>(x); };
  return {c(o.beta1),
          c(o.beta2),
          c(1.0 - o.beta1),
          c(1.0 - o.beta2),
          c(1.0 - lr * weight_decay),
          c(lr / bias1),
          c(1.0 / std::sqrt(bias2)),
          c(o.eps)};
}

// The element-wise AdamW update of one contiguous parameter in the stored type (the CUDA kernel,
// kernels/cuda/adamw.cu, performs the same operations in the same order).
template <typename scalar_t>
void adamw_kernel(scalar_t* __restrict p, const scalar_t* __restrict g, scalar_t* __restrict m,
                  scalar_t* __restrict v, int64_t n, const Coefficients<scalar_t>& c) {
  const scalar_t b1 = c.b1, b2 = c.b2, one_b1 = c.one_b1, one_b2 = c.one_b2;
  const scalar_t decay = c.decay, step_size = c.step_size, inv_sqrt_bias2 = c.inv_sqrt_bias2;
  const scalar_t e = c.eps;
#pragma omp parallel for simd if (n > 65536) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const scalar_t gi = g[i];
    const scalar_t mi = b1 * m[i] + one_b1 * gi;
    const scalar_t vi = b2 * v[i] + one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step_size * mi / (std::sqrt(vi) * inv_sqrt_bias2 + e);
  }
}

// m and v of a fresh parameter: zeros on the parameter's device.
Tensor zeros_like_param(const Tensor& p) {
  if (p.device() == Device::CPU) return Tensor::zeros(p.shape(), p.dtype());
#ifdef SSM_WITH_CUDA
  Tensor t = Tensor::empty(p.shape(), p.dtype(), p.device());
  // All-zero bytes are +0.0 in both float formats.
  SSM_CUDA_CHECK(
      cudaMemsetAsync(t.raw_data(), 0, static_cast<size_t>(t.numel()) * dtype_size(t.dtype()),
                      cuda::detail::stream()),
      "AdamW");
  return t;
#else
  SSM_FAIL("AdamW: a parameter is on {} but this build has no CUDA backend",
           device_name(p.device()));
#endif
}

template <typename scalar_t>
void update_on_device(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                      const Coefficients<scalar_t>& c) {
  if (p.device() == Device::CPU) {
    adamw_kernel<scalar_t>(p.data<scalar_t>(), g.data<scalar_t>(), m.data<scalar_t>(),
                           v.data<scalar_t>(), p.numel(), c);
    return;
  }
#ifdef SSM_WITH_CUDA
  namespace kg = kernels::cuda;
  const Device d = Device::CUDA;
  const kg::AdamWScalars<scalar_t> s{c.b1,    c.b2,        c.one_b1,         c.one_b2,
                                     c.decay, c.step_size, c.inv_sqrt_bias2, c.eps};
  SSM_CUDA_CHECK(kg::adamw_update<scalar_t>(p.data_on<scalar_t>(d), g.data_on<scalar_t>(d),
                                            m.data_on<scalar_t>(d), v.data_on<scalar_t>(d),
                                            p.numel(), s, cuda::detail::stream()),
                 "AdamW");
#else
  SSM_FAIL("AdamW: a parameter is on {} but this build has no CUDA backend",
           device_name(p.device()));
#endif
}

void check_finite_nonneg(double x, const char* what) {
  SSM_CHECK(std::isfinite(x) && x >= 0, "AdamW: argument '{}' expected a finite value >= 0, got {}",
            what, x);
}

}  // namespace

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options)
    : groups_(std::move(groups)), options_(options) {
  SSM_CHECK(options_.beta1 >= 0 && options_.beta1 < 1,
            "AdamW: argument 'beta1' expected in [0, 1), got {}", options_.beta1);
  SSM_CHECK(options_.beta2 >= 0 && options_.beta2 < 1,
            "AdamW: argument 'beta2' expected in [0, 1), got {}", options_.beta2);
  check_finite_nonneg(options_.eps, "eps");
  std::set<std::string> names;
  std::set<const TensorImpl*> seen;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    check_finite_nonneg(g.lr, "lr");
    check_finite_nonneg(g.weight_decay, "weight_decay");
    SSM_CHECK(g.param_names.empty() || g.param_names.size() == g.params.size(),
              "AdamW: group '{}' has {} parameters but {} names", g.name, g.params.size(),
              g.param_names.size());
    for (size_t i = 0; i < g.params.size(); ++i) {
      const Tensor& p = g.params[i];
      std::string name = g.param_names.empty() ? fmt::format("{}.{}", g.name, i) : g.param_names[i];
      SSM_CHECK(p.defined(), "AdamW: parameter '{}' is an undefined tensor", name);
      SSM_CHECK(is_floating(p.dtype()), "AdamW: parameter '{}' expected float32 or float64, got {}",
                name, dtype_name(p.dtype()));
      SSM_CHECK(p.is_contiguous(),
                "AdamW: parameter '{}' expected a contiguous tensor (updated in place), got "
                "shape {} strides {}",
                name, shape_str(p.shape()), shape_str(p.strides()));
      SSM_CHECK(seen.insert(p.impl_ptr()).second, "AdamW: parameter '{}' appears twice", name);
      SSM_CHECK(names.insert(name).second, "AdamW: two parameters are named '{}'", name);
      slots_.push_back(Slot{p, std::move(name), gi, {}});
    }
  }
}

// Each parameter is updated on its own device, with its state there too: one optimizer may
// hold parameters on several devices.
void AdamW::update(Slot& slot, const ParamGroup& group) {
  const Tensor& p = slot.param;
  Tensor g = p.grad();
  if (!g.defined()) return;
  SSM_CHECK(g.shape() == p.shape(), "AdamW: gradient of '{}' expected shape {}, got {}", slot.name,
            shape_str(p.shape()), shape_str(g.shape()));
  if (g.dtype() != p.dtype()) {
    // Conversions between float types run on the host (never needed for gradients the library's
    // ops produce, which match their leaf's dtype).
    g = g.to(Device::CPU).to(p.dtype());
  }
  g = g.to(p.device()).contiguous();
  ParamState& s = slot.state;
  if (!s.exp_avg.defined()) {
    s.exp_avg = zeros_like_param(p);
    s.exp_avg_sq = zeros_like_param(p);
  }
  ++s.step;
  const double lr = group.lr * lr_scale_;
  SSM_DISPATCH_FLOAT(p.dtype(), "AdamW", [&] {
    update_on_device<scalar_t>(p, g, s.exp_avg, s.exp_avg_sq,
                               coefficients<scalar_t>(lr, group.weight_decay, options_, s.step));
  });
}

void AdamW::step() {
  NoGradGuard no_grad;
  for (Slot& slot : slots_) update(slot, groups_[slot.group]);
}

void AdamW::zero_grad() {
  for (Slot& slot : slots_) slot.param.zero_grad();
}

void AdamW::set_lr_scale(double scale) {
  SSM_CHECK(std::isfinite(scale) && scale >= 0,
            "AdamW::set_lr_scale: argument 'scale' expected a finite value >= 0, got {}", scale);
  lr_scale_ = scale;
}

// exp_avg / exp_avg_sq come back on their parameter's device (a caller saving them copies them to
// the host); the step counts are host scalars.
std::map<std::string, Tensor> AdamW::state_dict() const {
  std::map<std::string, Tensor> out;
  for (const Slot& slot : slots_) {
    if (slot.state.step == 0) continue;
    out["exp_avg." + slot.name] = slot.state.exp_avg.clone();
    out["exp_avg_sq." + slot.name] = slot.state.exp_avg_sq.clone();
    out["step." + slot.name] = Tensor::full({}, static_cast<double>(slot.state.step), DType::I64);
  }
  return out;
}

void AdamW::load_state_dict(const std::map<std::string, Tensor>& state) {
  std::map<std::string, Slot*> by_name;
  for (Slot& slot : slots_) by_name[slot.name] = &slot;
  // Validate everything before changing anything, so a bad file leaves the optimizer intact.
  std::map<std::string, ParamState> loaded;
  for (const auto& [key, t] : state) {
    const auto dot = key.find('.');
    const std::string kind = dot == std::string::npos ? key : key.substr(0, dot);
    SSM_CHECK(
        dot != std::string::npos && (kind == "exp_avg" || kind == "exp_avg_sq" || kind == "step"),
        "AdamW::load_state_dict: unexpected entry '{}' (expected exp_avg.<param>, "
        "exp_avg_sq.<param> or step.<param>)",
        key);
    const std::string name = key.substr(dot + 1);
    auto it = by_name.find(name);
    SSM_CHECK(it != by_name.end(), "AdamW::load_state_dict: entry '{}' names no parameter", key);
    const Tensor& p = it->second->param;
    ParamState& s = loaded[name];
    if (kind == "step") {
      SSM_CHECK(t.numel() == 1, "AdamW::load_state_dict: '{}' expected a scalar, got shape {}", key,
                shape_str(t.shape()));
      const double v = t.to(Device::CPU).to_vector()[0];
      SSM_CHECK(v >= 1 && v == std::floor(v),
                "AdamW::load_state_dict: '{}' expected a positive integer, got {}", key, v);
      s.step = static_cast<int64_t>(v);
    } else {
      SSM_CHECK(t.shape() == p.shape(), "AdamW::load_state_dict: '{}' expected shape {}, got {}",
                key, shape_str(p.shape()), shape_str(t.shape()));
      SSM_CHECK(is_floating(t.dtype()),
                "AdamW::load_state_dict: '{}' expected a float tensor, got {}", key,
                dtype_name(t.dtype()));
      // Onto the parameter's device in its dtype (a checkpoint's tensors are on the host).
      Tensor src = t.dtype() == p.dtype() ? t : t.to(Device::CPU).to(p.dtype());
      src = src.contiguous();
      Tensor copy = Tensor::empty(p.shape(), p.dtype(), p.device());
      copy.copy_(src);
      (kind == "exp_avg" ? s.exp_avg : s.exp_avg_sq) = copy;
    }
  }
  for (const auto& [name, s] : loaded)
    SSM_CHECK(s.step > 0 && s.exp_avg.defined() && s.exp_avg_sq.defined(),
              "AdamW::load_state_dict: parameter '{}' needs exp_avg, exp_avg_sq and step; some are "
              "missing",
              name);
  for (Slot& slot : slots_) {
    auto it = loaded.find(slot.name);
    slot.state = it == loaded.end() ? ParamState{} : it->second;
  }
}

}  // namespace ssm::optim
