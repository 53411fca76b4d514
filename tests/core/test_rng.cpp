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
  // xoshiro256** seeded by SplitMix64 is fully specified: seed 0 gives the state
  // e220a8397b1dcdaf 6e789e6aa1b965f4 06c45d188009454f f88bb8a8724c81ec (SplitMix64's published
  // first outputs) and these first outputs (computed from the published algorithm, apart from
  // this code). A change here means every saved seed changes meaning.
  Generator g(0);
  EXPECT_EQ(g.next_u64(), 0x99ec5f36cb75f2b4ULL);
  EXPECT_EQ(g.next_u64(), 0xbf6e1f784956452aULL);
  EXPECT_EQ(g.next_u64(), 0x1a5f849d4933e6e0ULL);
  // uniform() is the top 53 bits scaled by 2^-53: exact in binary64 on every machine.
  Generator u(0);
  EXPECT_EQ(u.uniform(), static_cast<double>(0x99ec5f36cb75f2b4ULL >> 11) * 0x1.0p-53);
  EXPECT_DOUBLE_EQ(Generator(0).uniform(), 0.6012629994179048);
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
