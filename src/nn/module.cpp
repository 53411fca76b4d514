#include "ssm/nn/module.h"

#include <set>

namespace ssm::nn {

namespace {
std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}
}  // namespace

Tensor& Module::register_parameter(const std::string& name, Tensor value, ParamKind kind) {
  value.requires_grad_(true);
  params_.push_back(std::make_unique<Slot>(Slot{name, std::move(value), kind}));
  return params_.back()->tensor;
}

Tensor& Module::register_buffer(const std::string& name, Tensor value) {
  buffers_.push_back(std::make_unique<Slot>(Slot{name, std::move(value), ParamKind::NoDecay}));
  return buffers_.back()->tensor;
}

std::vector<NamedParameter> Module::named_parameters(const std::string& prefix) const {
  std::vector<NamedParameter> out;
  for (const auto& p : params_) out.push_back({join(prefix, p->name), p->tensor, p->kind});
  for (const auto& [name, child] : children_) {
    auto sub = child->named_parameters(join(prefix, name));
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& np : named_parameters()) out.push_back(np.tensor);
  return out;
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  for (auto& np : named_parameters()) out[np.name] = np.tensor;
  std::vector<std::pair<std::string, const Module*>> stack{{"", this}};
  while (!stack.empty()) {
    auto [prefix, m] = stack.back();
    stack.pop_back();
    for (const auto& b : m->buffers_) out[join(prefix, b->name)] = b->tensor;
    for (const auto& [name, child] : m->children_)
      stack.emplace_back(join(prefix, name), child.get());
  }
  return out;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state) {
  auto own = state_dict();
  for (const auto& [name, src] : state)
    SSM_CHECK(own.count(name), "load_state_dict: unexpected tensor '{}' (not in this model)", name);
  for (auto& [name, dst] : own) {
    auto it = state.find(name);
    SSM_CHECK(it != state.end(), "load_state_dict: tensor '{}' is missing", name);
    SSM_CHECK(it->second.shape() == dst.shape(),
              "load_state_dict: tensor '{}' has shape {}, the model expects {}", name,
              shape_str(it->second.shape()), shape_str(dst.shape()));
    dst.copy_(it->second);
  }
}

void Module::to(Device device) {
  for (auto& [name, t] : state_dict()) {
    if (!t.defined() || t.device() == device) continue;
    const Tensor moved = t.detach().contiguous().to(device);
    TensorImpl& impl = *t.impl_ptr();
    impl.storage = moved.storage();
    impl.offset = moved.offset();
    impl.strides = moved.strides();
    impl.grad.reset();
  }
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& np : named_parameters()) n += np.tensor.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& np : named_parameters()) np.tensor.zero_grad();
}

}  // namespace ssm::nn
