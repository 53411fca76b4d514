// model.s5_blocks (the S5 paper's J): the S5 layer's HiPPO-LegS initialisation in J blocks of
// order d_state / J, reaching the layer through the config and the sequence model.
#include <set>

#include "ssm/nn/sequence_model.h"
#include "ssm/train/config.h"
#include "support/testing.h"

using namespace ssm;

namespace {

// The distinct initial eigenvalues of the first block's S5 layer, by their imaginary parts
// (the real parts of the LegS modes are all −1/2).
std::set<double> distinct_modes(const train::RunConfig& c) {
  const nn::SequenceClassifier model(c.model, /*seed=*/5);
  const Tensor im = model.state_dict().at("blocks.0.ssm.Lambda_im");
  std::set<double> values;
  for (double v : im.to_vector()) values.insert(v);
  return values;
}

}  // namespace

TEST(S5Blocks, ConfigSetsTheHippoBlockOrder) {
  const std::string base = "[model]\nlayer = \"s5\"\nd_model = 4\nd_state = 16\nn_layers = 1\n";
  // J = 8 blocks of order 2: one kept mode per block, the same eigenvalue 8 times (the S5
  // repository's ListOps setting); the default is one block of order 16: 8 distinct modes.
  EXPECT_EQ(distinct_modes(train::parse_config(base + "s5_blocks = 8\n", {}, "a.toml")).size(), 1u);
  EXPECT_EQ(distinct_modes(train::parse_config(base + "s5_blocks = 2\n", {}, "a.toml")).size(), 4u);
  EXPECT_EQ(distinct_modes(train::parse_config(base, {}, "a.toml")).size(), 8u);
  EXPECT_SSM_ERROR(train::parse_config(base + "s5_blocks = 3\n", {}, "a.toml"), "model.s5_blocks",
                   "3", "16");
  EXPECT_SSM_ERROR(train::parse_config(base + "s5_blocks = 16\n", {}, "a.toml"), "model.s5_blocks",
                   "even");
  EXPECT_SSM_ERROR(train::parse_config(base + "s5_blocks = -1\n", {}, "a.toml"), "model.s5_blocks");
}
