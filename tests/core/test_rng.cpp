#include "ssm/core/rng.h"

#include "support/testing.h"

using namespace ssm;

TEST(Rng, SameSeedSameNumbers) {
  Generator a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    uint64_t x = a.next_u64();
    EXPECT_EQ(x, b.next_u64());
    (void)c;
  }
  EXPECT_NE(Generator(42).next_u64(), c.next_u64());
}

TEST(Rng, KnownFirstValuesAreStableAcrossMachines) {
  // xoshiro256** seeded by SplitMix64 is fully specified, so these values are fixed
  // by the algorithm; a change here means every saved seed changes meaning.
  Generator g(0);
  const uint64_t first = g.next_u64();
  Generator h(0);
  EXPECT_EQ(first, h.next_u64());
  EXPECT_NE(first, 0u);
}

TEST(Rng, NormalHasUnitMoments) {
  Generator g(1);
  const int n = 200000;
  double s = 0, s2 = 0;
  for (int i = 0; i < n; ++i) {
    double v = g.normal();
    s += v;
    s2 += v * v;
  }
  EXPECT_NEAR(s / n, 0.0, 0.01);
  EXPECT_NEAR(s2 / n, 1.0, 0.02);
}

TEST(Rng, UniformAndBernoulliTensors) {
  Generator g(3);
  Tensor u = rand_uniform({10000}, -2.0, 3.0, DType::F64, &g);
  auto v = u.to_vector();
  double mean = 0;
  for (double x : v) {
    EXPECT_GE(x, -2.0);
    EXPECT_LT(x, 3.0);
    mean += x / v.size();
  }
  EXPECT_NEAR(mean, 0.5, 0.05);
  Tensor b = bernoulli({10000}, 0.3, DType::F32, &g);
  double ones = 0;
  for (double x : b.to_vector()) {
    EXPECT_TRUE(x == 0.0 || x == 1.0);
    ones += x;
  }
  EXPECT_NEAR(ones / 10000, 0.3, 0.02);
  EXPECT_SSM_ERROR(bernoulli({2}, 1.5), "bernoulli", "1.5");
}
