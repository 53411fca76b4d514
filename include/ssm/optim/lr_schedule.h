#pragma once
// Learning-rate schedules as a multiplier of each group's base lr: the trainer calls
// optimizer.set_lr_scale(schedule.lr_scale(step)) before update number `step` (from 0).
#include <cstdint>
#include <memory>
#include <string>

namespace ssm::optim {

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  virtual double lr_scale(int64_t step) const = 0;
};

// Linear warmup over `warmup_steps` updates: (step + 1) / warmup_steps, so the first update
// already moves the weights and update warmup_steps − 1 reaches 1. Then constant 1.
class ConstantSchedule : public LrSchedule {
 public:
  explicit ConstantSchedule(int64_t warmup_steps = 0);
  double lr_scale(int64_t step) const override;

 private:
  int64_t warmup_steps_;
};

// Linear warmup as above, then half a cosine from 1 down to `min_scale` at step
// `total_steps`, and `min_scale` after that:
//   progress = (step − warmup) / (total − warmup)
//   scale    = min_scale + (1 − min_scale) · ½ · (1 + cos(π · progress))
class WarmupCosineSchedule : public LrSchedule {
 public:
  WarmupCosineSchedule(int64_t warmup_steps, int64_t total_steps, double min_scale = 0.0);
  double lr_scale(int64_t step) const override;

 private:
  int64_t warmup_steps_, total_steps_;
  double min_scale_;
};

// By name, for configs: "constant" or "cosine" (total_steps and min_scale are used by cosine).
std::unique_ptr<LrSchedule> make_schedule(const std::string& name, int64_t warmup_steps,
                                          int64_t total_steps, double min_scale);

}  // namespace ssm::optim
