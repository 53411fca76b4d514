// The perturb-then-diagonalise init ("legs-ptd") as the S4D and S5 layers and the config
// expose it: the layers' Λ and B̃ are those of hippo_ptd with the seed the layer draws.
#include <cmath>

#include "ssm/core/rng.h"
#include "ssm/nn/hippo.h"
#include "ssm/nn/s4d.h"
#include "ssm/nn/s5.h"
#include "ssm/train/config.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::nn;

namespace {

// The seed a layer built from Generator(seed) passes to hippo_ptd: its first draw.
uint64_t first_draw(uint64_t seed) {
  Generator g(seed);
  return g.next_u64();
}

void expect_mode(const Tensor& re_log, const Tensor& im, int64_t i, const complexd& lambda) {
  const double re = -std::exp(re_log.to_vector()[i]);
  EXPECT_NEAR(re, lambda.real(), 1e-12 * std::abs(lambda.real())) << i;
  EXPECT_EQ(im.to_vector()[i], lambda.imag()) << i;
}

}  // namespace

TEST(PtdInit, S4DLayerHasThePtdEigenvaluesAndB) {
  S4DOptions o;
  o.d_model = 3;
  o.d_state = 16;
  o.init = "legs-ptd";
  o.ptd_norm = 0.2;
  Generator gen(42);
  S4D layer(o, gen, DType::F64);
  const PTD p = hippo_ptd(16, 0.2, first_draw(42));
  const int64_t M = 8;
  const auto b_re = layer.B_re.to_vector(), b_im = layer.B_im.to_vector();
  for (int64_t h = 0; h < o.d_model; ++h)
    for (int64_t n = 0; n < M; ++n) {
      expect_mode(layer.A_re_log, layer.A_im, h * M + n, p.lambda[n]);
      EXPECT_EQ(complexd(b_re[h * M + n], b_im[h * M + n]), p.B[n]);
    }
  // The plain LegS init is the DPLR form's normal part: different eigenvalues.
  o.init = "legs";
  Generator gen2(42);
  S4D plain(o, gen2, DType::F64);
  EXPECT_NE(plain.A_im.to_vector()[M - 1], layer.A_im.to_vector()[M - 1]);
  // It runs: the kernel is finite (the modes' large B̃ cancel against C̃ = C·V).
  for (double v : layer.kernel(32).to_vector()) ASSERT_TRUE(std::isfinite(v));
}

TEST(PtdInit, S5LayerBlocksAreThePtdEigenvalues) {
  S5Options o;
  o.d_model = 4;
  o.d_state = 16;  // two blocks of block_size/2 = 8 modes
  o.block_size = 16;
  o.init = "legs-ptd";
  o.ptd_norm = 0.1;
  Generator gen(7);
  S5 layer(o, gen, DType::F64);
  const PTD p = hippo_ptd(16, 0.1, first_draw(7));
  for (int64_t j = 0; j < 2; ++j)
    for (int64_t n = 0; n < 8; ++n)
      expect_mode(layer.Lambda_re_log, layer.Lambda_im, j * 8 + n, p.lambda[n]);
  Tensor x = ssm::testing::random({2, 12, 4}, DType::F64, 8);
  for (double v : layer.forward(x).to_vector()) ASSERT_TRUE(std::isfinite(v));
  o.init = "legt";
  EXPECT_SSM_ERROR(S5(o, gen, DType::F64), "S5", "init", "legt");
}

TEST(PtdInit, ConfigAcceptsLegsPtdAndRejectsBadNorms) {
  using train::parse_config;
  const train::RunConfig c =
      parse_config("[model]\ninit = \"legs-ptd\"\nptd_norm = 0.05\n", {}, "a.toml");
  EXPECT_EQ(c.model.init, "legs-ptd");
  EXPECT_EQ(c.model.ptd_norm, 0.05);
  EXPECT_SSM_ERROR(parse_config("[model]\nptd_norm = -0.5\n", {}, "a.toml"), "model.ptd_norm",
                   "-0.5");
  EXPECT_SSM_ERROR(parse_config("[model]\ninit = \"legs-ptd\"\nptd_norm = 0.0\n", {}, "a.toml"),
                   "model.ptd_norm", "positive");
  EXPECT_SSM_ERROR(parse_config("[model]\nlayer = \"s4\"\ninit = \"legs-ptd\"\n", {}, "a.toml"),
                   "model.init", "legs-ptd", "s4");
}
