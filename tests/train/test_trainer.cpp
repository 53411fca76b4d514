// End-to-end trainer checks on a tiny slice of sequential Fashion-MNIST (skipped when the
// Debian package dataset-fashion-mnist is not installed).
#include "ssm/train/trainer.h"

#include <filesystem>

#include "ssm/data/sequential_image.h"
#include "ssm/io/checkpoint.h"
#include "ssm/train/metrics_log.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::train;
namespace fs = std::filesystem;

namespace {

bool have_fashion_mnist() {
  return fs::exists(std::string(data::kFashionMnistDir) + "/train-images-idx3-ubyte.gz");
}

RunConfig tiny_config() {
  RunConfig c = parse_config(R"(
[model]
d_model = 8
d_state = 4
n_layers = 2
dropout = 0.1
[data]
train_limit = 48
val_size = 16
test_limit = 16
[train]
batch_size = 8
epochs = 2
lr = 0.01
warmup_steps = 2
grad_clip = 1.0
log_every = 1
eval_every = 3
checkpoint_every = 3
)",
                             {}, "tiny");
  return c;
}

TrainResult run_training(const RunConfig& c, const std::string& dir, bool resume, int64_t stop = 0) {
  return ssm::train::train(c, dir, resume, stop);
}

std::string fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("ssm_trainer_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d.string();
}

}  // namespace


TEST(Trainer, ResumedRunEqualsUninterruptedRun) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const RunConfig c = tiny_config();  // 12 steps: 6 per epoch, 2 epochs
  const std::string full = fresh_dir("full"), cut = fresh_dir("cut");
  TrainResult a = run_training(c, full, false);
  EXPECT_EQ(a.steps, 12);
  // Interrupted after step 7 (last checkpoint at step 6, mid-run and across the epoch
  // boundary), then resumed: the final parameters must be bitwise identical.
  run_training(c, cut, false, /*stop_after_step=*/7);
  TrainResult b = run_training(c, cut, true);
  EXPECT_EQ(b.steps, 12);
  io::Checkpoint ca = io::load_checkpoint(full), cb = io::load_checkpoint(cut);
  ASSERT_EQ(ca.model_state.size(), cb.model_state.size());
  for (const auto& [name, t] : ca.model_state)
    EXPECT_EQ(t.to_vector(), cb.model_state.at(name).to_vector()) << name;
  EXPECT_DOUBLE_EQ(a.test.loss, b.test.loss);
  // metrics.jsonl has no duplicate step records after the resume.
  MetricsLog log(cut + "/metrics.jsonl");
  int train_records = 0;
  for (const auto& r : log.records()) train_records += r.contains("train_loss");
  EXPECT_EQ(train_records, 12);
  EXPECT_TRUE(fs::exists(cut + "/curves.svg"));
  EXPECT_TRUE(fs::exists(cut + "/config.toml"));
  fs::remove_all(full);
  fs::remove_all(cut);
}

TEST(Trainer, SameSeedSameLossCurve) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  RunConfig c = tiny_config();
  c.train.epochs = 1;
  const std::string d1 = fresh_dir("s1"), d2 = fresh_dir("s2");
  run_training(c, d1, false);
  run_training(c, d2, false);
  MetricsLog l1(d1 + "/metrics.jsonl"), l2(d2 + "/metrics.jsonl");
  ASSERT_EQ(l1.records().size(), l2.records().size());
  for (size_t i = 0; i < l1.records().size(); ++i) {
    if (l1.records()[i].contains("train_loss")) {
      EXPECT_EQ(l1.records()[i]["train_loss"], l2.records()[i]["train_loss"]);
    }
  }
  fs::remove_all(d1);
  fs::remove_all(d2);
}

TEST(Trainer, RefusesToOverwriteARunAndChecksConfigAgainstData) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  RunConfig c = tiny_config();
  c.train.max_steps = 1;
  c.train.warmup_steps = 0;
  const std::string d = fresh_dir("twice");
  run_training(c, d, false);
  EXPECT_SSM_ERROR(run_training(c, d, false), "already holds a checkpoint", "--resume");
  RunConfig bad = tiny_config();
  bad.model.n_classes = 7;
  EXPECT_SSM_ERROR(run_training(bad, fresh_dir("bad"), false), "model.n_classes", "10");
  RunConfig warm = tiny_config();
  warm.train.warmup_steps = 100;
  EXPECT_SSM_ERROR(run_training(warm, fresh_dir("warm"), false), "train.warmup_steps");
  fs::remove_all(d);
}
