// The trainer's guards (issue 3 "Bad input"): a loss that stops being finite ends the run with
// a one-line message and leaves the last good checkpoint as it was; a sequence longer than
// model.max_length is rejected, naming the key, before any step runs. On a tiny slice of
// sequential Fashion-MNIST (skipped when the Debian package dataset-fashion-mnist is missing).
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "ssm/data/sequential_image.h"
#include "ssm/io/checkpoint.h"
#include "ssm/train/metrics_log.h"
#include "ssm/train/trainer.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::train;
namespace fs = std::filesystem;

namespace {

bool have_fashion_mnist() {
  return fs::exists(std::string(data::kFashionMnistDir) + "/train-images-idx3-ubyte.gz");
}

// 48 training examples in batches of 8: 6 steps, a checkpoint every 3.
RunConfig tiny_config() {
  return parse_config(R"(
[model]
d_model = 8
d_state = 4
n_layers = 1
[data]
train_limit = 48
val_size = 16
test_limit = 16
[train]
batch_size = 8
epochs = 1
lr = 0.01
log_every = 1
eval_every = 3
checkpoint_every = 3
)",
                      {}, "guards");
}

std::string fresh_dir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("ssm_guards_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d.string();
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int64_t train_records(const std::string& run_dir) {
  MetricsLog log(run_dir + "/metrics.jsonl");
  int64_t n = 0;
  for (const auto& r : log.records()) n += r.contains("train_loss");
  return n;
}

}  // namespace

// A run checkpointed at step 3 is resumed with an absurd learning rate (as a user might with
// `ssm train --resume --set train.lr=…`): AdamW's first update moves every weight by about lr,
// so the next forward pass overflows float32. The run must stop with one line naming the
// problem, and checkpoint.safetensors must still be the step-3 file, byte for byte.
TEST(TrainerGuards, NonFiniteLossStopsTheRunAndKeepsTheLastCheckpoint) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string dir = fresh_dir("nan");
  const RunConfig good = tiny_config();
  ssm::train::train(good, dir, false, /*stop_after_step=*/3);
  const std::string ckpt = io::checkpoint_path(dir);
  ASSERT_TRUE(fs::exists(ckpt));
  const std::string before = file_bytes(ckpt);
  ASSERT_EQ(train_records(dir), 3);

  RunConfig absurd = good;
  absurd.train.lr = 1e30;
  absurd.train.ssm_lr = 1e30;
  std::string message;
  try {
    ssm::train::train(absurd, dir, /*resume=*/true);
    ADD_FAILURE() << "a run with lr 1e30 finished";
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  // The step that failed (5: step 4's update broke the model), why (the loss op refuses
  // non-finite logits), and which checkpoint is left for a resume.
  EXPECT_NE(message.find("stopped at step 5"), std::string::npos) << message;
  EXPECT_NE(message.find("not finite"), std::string::npos) << message;
  EXPECT_NE(message.find("checkpoint of step 3"), std::string::npos) << message;
  EXPECT_NE(message.find(dir), std::string::npos) << "names the run directory: " << message;

  // Step 4 (the first resumed step) had a finite loss: its update is what broke the model;
  // no checkpoint was due before the loss became non-finite.
  EXPECT_EQ(train_records(dir), 4);
  EXPECT_EQ(file_bytes(ckpt), before) << "the checkpoint was rewritten";
  EXPECT_FALSE(fs::exists(ckpt + ".tmp"));
  const io::Checkpoint ck = io::load_checkpoint(dir);
  EXPECT_EQ(nlohmann::json::parse(ck.metadata_json).at("step").get<int64_t>(), 3);
  ASSERT_FALSE(ck.model_state.empty());
  for (const auto& [name, t] : ck.model_state)
    for (double v : t.to_vector()) ASSERT_TRUE(std::isfinite(v)) << name;
  for (const auto& [name, t] : ck.optimizer_state)
    for (double v : t.to_vector()) ASSERT_TRUE(std::isfinite(v)) << name;

  // The intact checkpoint resumes with the good config and finishes the run.
  const TrainResult done = ssm::train::train(good, dir, /*resume=*/true);
  EXPECT_EQ(done.steps, 6);
  EXPECT_TRUE(std::isfinite(done.test.loss));
  fs::remove_all(dir);
}

// Fashion-MNIST sequences are 784 pixels long; a model declared for 700 must be refused before
// anything is written to the run directory.
TEST(TrainerGuards, SequenceLongerThanModelMaxLengthIsRejectedBeforeTraining) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  for (const char* layer : {"s4d", "s4", "s5"}) {
    SCOPED_TRACE(layer);
    RunConfig c = tiny_config();
    c.model.layer = layer;
    c.model.max_length = 700;
    const std::string dir = fresh_dir(std::string("len_") + layer);
    EXPECT_SSM_ERROR(ssm::train::train(c, dir, false), "model.max_length", "700", "784");
    EXPECT_FALSE(fs::exists(dir + "/metrics.jsonl"));
    EXPECT_FALSE(fs::exists(io::checkpoint_path(dir)));
    EXPECT_FALSE(fs::exists(dir + "/config.toml"));
    EXPECT_FALSE(fs::exists(dir + "/curves.svg"));
    fs::remove_all(dir);
  }
  // Exactly the data's length is accepted (the bound is inclusive): one step runs.
  RunConfig fits = tiny_config();
  fits.model.max_length = 784;
  fits.train.max_steps = 1;
  const std::string dir = fresh_dir("len_fits");
  EXPECT_EQ(ssm::train::train(fits, dir, false).steps, 1);
  fs::remove_all(dir);
}
