#pragma once
// Module: a tree of named parameters, buffers and submodules, with train/eval mode.
// Parameters are Tensor handles: the optimizer updates the very storage the module reads.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ssm/core/tensor.h"

namespace ssm::nn {

// How the optimizer should treat a parameter (DESIGN §2 optim).
enum class ParamKind {
  Weight,   // weight decay on, base lr
  NoDecay,  // biases, norm weights, embeddings: no weight decay, base lr
  SSM,      // SSM dynamics (A, Δ, B of LTI layers; A_log, D, dt bias of Mamba): own lr, no decay
};

struct NamedParameter {
  std::string name;
  Tensor tensor;
  ParamKind kind;
};

class Module {
 public:
  virtual ~Module() = default;

  // All parameters of this module and its children, names joined with '.'.
  std::vector<NamedParameter> named_parameters(const std::string& prefix = "") const;
  std::vector<Tensor> parameters() const;
  // Parameters and buffers (e.g. BatchNorm running statistics) by full name.
  std::map<std::string, Tensor> state_dict() const;
  // Copies values into the existing tensors; names and shapes must match exactly
  // (the error names the tensor and both shapes). Missing or extra names are errors.
  void load_state_dict(const std::map<std::string, Tensor>& state);
  int64_t num_parameters() const;
  // Moves every parameter and buffer to `device` in place: the tensors keep their identity
  // (members, optimizer slots and the returned references all see the new storage), and
  // gradients are dropped. Build the optimizer after moving the model.
  void to(Device device);

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();

 protected:
  Tensor& register_parameter(const std::string& name, Tensor value,
                             ParamKind kind = ParamKind::Weight);
  Tensor& register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  struct Slot {
    std::string name;
    Tensor tensor;
    ParamKind kind;
  };
  // std::vector of unique_ptr keeps each Tensor at a stable address for the references returned.
  std::vector<std::unique_ptr<Slot>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace ssm::nn
