#include "ssm/train/config.h"

#include "support/testing.h"

using namespace ssm;
using namespace ssm::train;

TEST(Config, ParsesOverridesAndRoundTrips) {
  const std::string text = R"(
[model]
d_model = 32
init = "lin"
[train]
lr = 0.004
epochs = 3
)";
  RunConfig c = parse_config(text, {"train.batch_size=17", "model.norm=batch", "data.permute=true"}, "t.toml");
  EXPECT_EQ(c.model.d_model, 32);
  EXPECT_EQ(c.model.init, "lin");
  EXPECT_DOUBLE_EQ(c.train.lr, 0.004);
  EXPECT_EQ(c.train.batch_size, 17);
  EXPECT_EQ(c.model.norm, "batch");
  EXPECT_TRUE(c.data.permute);
  RunConfig again = parse_config(config_to_toml(c), {}, "resolved");
  EXPECT_EQ(config_to_toml(again), config_to_toml(c));
  EXPECT_EQ(again.train.batch_size, 17);
}

TEST(Config, RejectsUnknownKeysAndBadValuesNamingTheKey) {
  EXPECT_SSM_ERROR(parse_config("[model]\nd_modle = 3\n", {}, "a.toml"), "a.toml", "model.d_modle");
  EXPECT_SSM_ERROR(parse_config("[optim]\nlr = 3\n", {}, "a.toml"), "[optim]");
  EXPECT_SSM_ERROR(parse_config("[train]\nlr = -0.1\n", {}, "a.toml"), "train.lr", "-0.1");
  EXPECT_SSM_ERROR(parse_config("[model]\nd_state = 63\n", {}, "a.toml"), "model.d_state", "even", "63");
  EXPECT_SSM_ERROR(parse_config("[model]\nnorm = \"group\"\n", {}, "a.toml"), "model.norm", "group");
  EXPECT_SSM_ERROR(parse_config("[model]\nd_model = \"big\"\n", {}, "a.toml"), "model.d_model", "integer");
  EXPECT_SSM_ERROR(parse_config("", {"train.lr"}, "a.toml"), "train.lr", "section.key=value");
  EXPECT_SSM_ERROR(parse_config("[model\n", {}, "a.toml"), "a.toml", "line 1");
  EXPECT_SSM_ERROR(load_config("/nonexistent/x.toml", {}), "/nonexistent/x.toml");
}
