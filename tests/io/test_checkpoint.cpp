#include <unistd.h>

#include <filesystem>

#include "ssm/io/checkpoint.h"
#include "ssm/io/safetensors.h"
#include "ssm/optim/adamw.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::io;
using ssm::testing::random;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const char* name) {
  return fs::temp_directory_path() / fmt::format("ssm_test_checkpoint_{}_{}", getpid(), name);
}

}  // namespace

TEST(Checkpoint, RoundTripWithAdamWState) {
  const fs::path dir = temp_dir("roundtrip") / "run1";  // created by save_checkpoint
  Tensor w = random({4, 3}, DType::F32, 1, true), a = random({5}, DType::F64, 2, true);
  optim::AdamW adam({{{w}, 0.01, 0.1, "decay", {"w"}}, {{a}, 0.001, 0.0, "ssm", {"a"}}});
  for (int s = 0; s < 2; ++s) {
    w.set_grad(random({4, 3}, DType::F32, 10 + s));
    a.set_grad(random({5}, DType::F64, 20 + s));
    adam.step();
  }
  const std::map<std::string, Tensor> model{{"enc.w", w}, {"ssm.a", a}};
  save_checkpoint(dir.string(), model, adam.state_dict(), R"({"step": 2, "epoch": 0})");
  EXPECT_TRUE(fs::exists(checkpoint_path(dir.string())));

  const Checkpoint c = load_checkpoint(dir.string());
  EXPECT_EQ(c.metadata_json, R"({"epoch":0,"step":2})");
  ASSERT_EQ(c.model_state.size(), 2u);
  EXPECT_EQ(c.model_state.at("enc.w").to_vector(), w.to_vector());
  EXPECT_EQ(c.model_state.at("ssm.a").dtype(), DType::F64);
  const auto state = adam.state_dict();
  ASSERT_EQ(c.optimizer_state.size(), state.size());
  for (const auto& [name, t] : state)
    EXPECT_EQ(c.optimizer_state.at(name).to_vector(), t.to_vector());
  // A fresh optimizer restored from the checkpoint continues exactly like the original.
  Tensor w2 = c.model_state.at("enc.w").clone().requires_grad_();
  Tensor a2 = c.model_state.at("ssm.a").clone().requires_grad_();
  optim::AdamW resumed({{{w2}, 0.01, 0.1, "decay", {"w"}}, {{a2}, 0.001, 0.0, "ssm", {"a"}}});
  resumed.load_state_dict(c.optimizer_state);
  w.set_grad(random({4, 3}, DType::F32, 30)), w2.set_grad(random({4, 3}, DType::F32, 30));
  a.set_grad(random({5}, DType::F64, 31)), a2.set_grad(random({5}, DType::F64, 31));
  adam.step();
  resumed.step();
  EXPECT_EQ(w2.to_vector(), w.to_vector());
  EXPECT_EQ(a2.to_vector(), a.to_vector());
  // Saving again replaces the file in place.
  save_checkpoint(dir.string(), model, {}, R"({"step": 3})");
  EXPECT_EQ(load_checkpoint(dir.string()).metadata_json, R"({"step":3})");
  EXPECT_TRUE(load_checkpoint(dir.string()).optimizer_state.empty());
  fs::remove_all(dir.parent_path());
}

TEST(Checkpoint, Errors) {
  const fs::path dir = temp_dir("errors");
  fs::create_directories(dir);
  EXPECT_SSM_ERROR(load_checkpoint(dir.string()), "load_checkpoint", "no checkpoint",
                   "checkpoint.safetensors");
  EXPECT_SSM_ERROR(save_checkpoint(dir.string(), {}, {}, "{step: 1"), "save_checkpoint",
                   "metadata_json", "not valid JSON");
  EXPECT_SSM_ERROR(save_checkpoint(dir.string(), {}, {}, "[1]"), "save_checkpoint", "metadata_json",
                   "object");
  // A plain safetensors file (e.g. a model export) is not a checkpoint.
  write_safetensors(checkpoint_path(dir.string()), {{"w", Tensor::zeros({2})}});
  EXPECT_SSM_ERROR(load_checkpoint(dir.string()), "load_checkpoint", "not an ssm checkpoint");
  fs::remove_all(dir);
}
