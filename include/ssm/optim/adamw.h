#pragma once
// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, matching torch.optim.AdamW.
// For each parameter p with gradient g, at its t-th update (t counts from 1), with
// lr_t = group.lr · lr_scale:
//   p ← p · (1 − lr_t · weight_decay)
//   m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
//   p ← p − lr_t / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
// Parameters without a gradient are skipped (their step count does not advance).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ssm/optim/param_groups.h"

namespace ssm::optim {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

class AdamW {
 public:
  explicit AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {});

  // One update of every parameter that has a gradient. Not recorded by autograd.
  void step();
  // Drops every parameter's gradient (the next backward starts from nothing).
  void zero_grad();

  // Multiplies every group's lr for the following steps (set from a schedule each step).
  void set_lr_scale(double scale);
  double lr_scale() const { return lr_scale_; }

  const std::vector<ParamGroup>& groups() const { return groups_; }
  const AdamWOptions& options() const { return options_; }

  // Optimizer state for checkpoints: "exp_avg.<param>", "exp_avg_sq.<param>" (same dtype and
  // shape as the parameter) and "step.<param>" (an int64 scalar), for every parameter that
  // has been updated at least once. load_state_dict replaces the state with `state`;
  // parameters absent from it start fresh, unknown names or mismatched shapes are errors.
  std::map<std::string, Tensor> state_dict() const;
  void load_state_dict(const std::map<std::string, Tensor>& state);

 private:
  struct ParamState {
    Tensor exp_avg, exp_avg_sq;  // m and v, same dtype and shape as the parameter
    int64_t step = 0;
  };
  struct Slot {
    Tensor param;
    std::string name;
    size_t group;
    ParamState state;
  };
  void update(Slot& slot, const ParamGroup& group);

  std::vector<ParamGroup> groups_;
  AdamWOptions options_;
  std::vector<Slot> slots_;
  double lr_scale_ = 1.0;
};

}  // namespace ssm::optim
