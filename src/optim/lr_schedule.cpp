#include "ssm/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "ssm/core/error.h"

namespace ssm::optim {

namespace {
// (step + 1) / warmup during warmup, 1 after; nullopt-free: returns 1 when past warmup.
double warmup_scale(int64_t step, int64_t warmup_steps) {
  if (step >= warmup_steps) return 1.0;
  return static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
}
void check_step(int64_t step, const char* what) {
  SSM_CHECK(step >= 0, "{}::lr_scale: argument 'step' expected >= 0, got {}", what, step);
}
}  // namespace

ConstantSchedule::ConstantSchedule(int64_t warmup_steps) : warmup_steps_(warmup_steps) {
  SSM_CHECK(warmup_steps >= 0, "ConstantSchedule: argument 'warmup_steps' expected >= 0, got {}",
            warmup_steps);
}

double ConstantSchedule::lr_scale(int64_t step) const {
  check_step(step, "ConstantSchedule");
  return warmup_scale(step, warmup_steps_);
}

WarmupCosineSchedule::WarmupCosineSchedule(int64_t warmup_steps, int64_t total_steps,
                                           double min_scale)
    : warmup_steps_(warmup_steps), total_steps_(total_steps), min_scale_(min_scale) {
  SSM_CHECK(warmup_steps >= 0,
            "WarmupCosineSchedule: argument 'warmup_steps' expected >= 0, got {}", warmup_steps);
  SSM_CHECK(total_steps > warmup_steps,
            "WarmupCosineSchedule: argument 'total_steps' expected > warmup_steps ({}), got {}",
            warmup_steps, total_steps);
  SSM_CHECK(min_scale >= 0 && min_scale <= 1,
            "WarmupCosineSchedule: argument 'min_scale' expected in [0, 1], got {}", min_scale);
}

double WarmupCosineSchedule::lr_scale(int64_t step) const {
  check_step(step, "WarmupCosineSchedule");
  if (step < warmup_steps_) return warmup_scale(step, warmup_steps_);
  const double progress = std::min(1.0, static_cast<double>(step - warmup_steps_) /
                                            static_cast<double>(total_steps_ - warmup_steps_));
  return min_scale_ + (1.0 - min_scale_) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

std::unique_ptr<LrSchedule> make_schedule(const std::string& name, int64_t warmup_steps,
                                          int64_t total_steps, double min_scale) {
  if (name == "constant") return std::make_unique<ConstantSchedule>(warmup_steps);
  if (name == "cosine")
    return std::make_unique<WarmupCosineSchedule>(warmup_steps, total_steps, min_scale);
  SSM_FAIL("make_schedule: argument 'name' expected 'constant' or 'cosine', got '{}'", name);
}

}  // namespace ssm::optim
