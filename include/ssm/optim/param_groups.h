#pragma once
// Parameter groups: the optimizer's view of a model's parameters, each group with its own
// learning rate and weight decay (DESIGN §2 optim).
#include <string>
#include <vector>

#include "ssm/core/tensor.h"
#include "ssm/nn/module.h"

namespace ssm::optim {

struct ParamGroup {
  std::vector<Tensor> params;
  double lr = 1e-3;
  double weight_decay = 0.0;
  std::string name;
  // Names of the parameters (same order as `params`). They key the optimizer state in
  // checkpoints; when empty, "<group name>.<index>" is used instead.
  std::vector<std::string> param_names;
};

// Splits parameters by their ParamKind:
//   "decay"    ParamKind::Weight   lr = lr,     weight decay = weight_decay
//   "no_decay" ParamKind::NoDecay  lr = lr,     no weight decay
//   "ssm"      ParamKind::SSM      lr = ssm_lr, no weight decay
// Empty groups are left out; within a group the model's parameter order is kept.
std::vector<ParamGroup> make_param_groups(const std::vector<nn::NamedParameter>& params, double lr,
                                          double weight_decay, double ssm_lr);

}  // namespace ssm::optim
