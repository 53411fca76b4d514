#include <cmath>

#include "ssm/optim/lr_schedule.h"
#include "support/testing.h"

using namespace ssm::optim;

TEST(LrSchedule, WarmupCosineKnownValues) {
  WarmupCosineSchedule s(/*warmup=*/4, /*total=*/14, /*min_scale=*/0.1);
  EXPECT_DOUBLE_EQ(s.lr_scale(0), 0.25);
  EXPECT_DOUBLE_EQ(s.lr_scale(1), 0.5);
  EXPECT_DOUBLE_EQ(s.lr_scale(3), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_scale(4), 1.0);  // cosine starts at its peak
  // Half-way through the decay: cos(π/2) = 0, so the middle of [min, 1].
  EXPECT_NEAR(s.lr_scale(9), 0.1 + 0.9 * 0.5, 1e-15);
  // A quarter of the way: ½(1 + cos(π/4)).
  WarmupCosineSchedule q(0, 8, 0.0);
  EXPECT_NEAR(q.lr_scale(2), 0.5 * (1 + std::sqrt(0.5)), 1e-15);
  EXPECT_NEAR(s.lr_scale(14), 0.1, 1e-15);
  EXPECT_NEAR(s.lr_scale(1000), 0.1, 1e-15);  // floor after the end
  // Monotone non-increasing after warmup.
  for (int64_t t = 4; t < 20; ++t) EXPECT_LE(s.lr_scale(t + 1), s.lr_scale(t) + 1e-15);
}

TEST(LrSchedule, ConstantWithAndWithoutWarmup) {
  ConstantSchedule c;
  EXPECT_EQ(c.lr_scale(0), 1.0);
  EXPECT_EQ(c.lr_scale(12345), 1.0);
  ConstantSchedule w(10);
  EXPECT_DOUBLE_EQ(w.lr_scale(0), 0.1);
  EXPECT_DOUBLE_EQ(w.lr_scale(4), 0.5);
  EXPECT_DOUBLE_EQ(w.lr_scale(9), 1.0);
  EXPECT_DOUBLE_EQ(w.lr_scale(50), 1.0);
  auto by_name = make_schedule("cosine", 0, 10, 0.0);
  EXPECT_NEAR(by_name->lr_scale(5), 0.5, 1e-15);
  EXPECT_EQ(make_schedule("constant", 0, 10, 0.0)->lr_scale(7), 1.0);
}

TEST(LrSchedule, BadArguments) {
  EXPECT_SSM_ERROR(WarmupCosineSchedule(10, 5), "WarmupCosineSchedule", "total_steps", "5");
  EXPECT_SSM_ERROR(WarmupCosineSchedule(0, 5, 1.5), "WarmupCosineSchedule", "min_scale", "1.5");
  EXPECT_SSM_ERROR(ConstantSchedule(-1), "ConstantSchedule", "warmup_steps", "-1");
  EXPECT_SSM_ERROR(ConstantSchedule().lr_scale(-3), "lr_scale", "step", "-3");
  EXPECT_SSM_ERROR(make_schedule("linear", 0, 10, 0.0), "make_schedule", "'linear'");
}
