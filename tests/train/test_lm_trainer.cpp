// The trainer on token tasks with a MambaLM: config keys and their errors, the target-rows
// loss against the full forward, learning, exact resumption, the text task's bits per byte.
#include <cmath>
#include <filesystem>
#include <fstream>

#include "ssm/core/cuda.h"
#include "ssm/core/threads.h"
#include "ssm/data/token_task.h"
#include "ssm/io/checkpoint.h"
#include "ssm/ops/loss.h"
#include "ssm/train/metrics_log.h"
#include "ssm/train/trainer.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::train;
namespace fs = std::filesystem;

namespace {

// Tiny models gain nothing from threads, and on a loaded machine OpenMP barriers cost more
// than the work: every test runs on one thread.
class OneThread : public ::testing::Environment {
 public:
  void SetUp() override { ssm::set_num_threads(1); }
};
const auto* const kOneThread = ::testing::AddGlobalTestEnvironment(new OneThread);

std::string fresh_dir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("ssm_lm_trainer_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d.string();
}

// A tiny Mamba on MQAR with 4 pairs over 24 ids in sequences of 24.
RunConfig tiny_mqar(const std::vector<std::string>& overrides = {}) {
  return parse_config(R"(
[model]
arch = "mamba1"
d_model = 16
d_state = 4
n_layers = 2
[data]
dataset = "mqar"
seq_len = 24
num_pairs = 4
vocab_size = 24
train_size = 480
val_size = 32
test_size = 32
[train]
batch_size = 16
epochs = 2
lr = 0.01
ssm_lr = 0.01
warmup_steps = 2
grad_clip = 1.0
log_every = 1
eval_every = 5
checkpoint_every = 5
)",
                      overrides, "tiny-mqar");
}

}  // namespace

TEST(LmConfig, TaskDefaultsAndKeysAreChecked) {
  const RunConfig sc =
      parse_config("[model]\narch = \"mamba1\"\n[data]\ndataset = \"selective-copy\"\n", {}, "sc");
  EXPECT_EQ(sc.data.seq_len, 4096);
  EXPECT_EQ(sc.data.vocab_size, 16);
  EXPECT_EQ(sc.data.num_tokens, 16);
  const RunConfig ih =
      parse_config("[model]\narch = \"mamba1\"\n[data]\ndataset = \"induction-heads\"\n", {}, "ih");
  EXPECT_EQ(ih.data.seq_len, 256);
  // The resolved config round-trips through its TOML.
  const RunConfig again = parse_config(config_to_toml(sc), {}, "again");
  EXPECT_EQ(config_to_toml(again), config_to_toml(sc));

  const std::string base = "[data]\ndataset = \"mqar\"\n";
  EXPECT_SSM_ERROR(parse_config(base, {}, "x"), "model.arch", "mamba1");
  EXPECT_SSM_ERROR(parse_config(base, {"model.arch=mamba4"}, "x"), "model.arch", "mamba4");
  EXPECT_SSM_ERROR(parse_config(base, {"model.arch=mamba1", "data.num_pairs=0"}, "x"),
                   "data.num_pairs");
  EXPECT_SSM_ERROR(parse_config(base, {"model.arch=mamba1", "data.seq_len=32"}, "x"),
                   "data.seq_len", "32");
  // The evaluation length is checked too.
  EXPECT_SSM_ERROR(parse_config(base, {"model.arch=mamba1", "data.eval_length=40"}, "x"),
                   "data.seq_len", "40");
  EXPECT_SSM_ERROR(parse_config(base, {"model.arch=mamba2", "model.head_dim=48"}, "x"),
                   "model.head_dim", "48");
  EXPECT_SSM_ERROR(parse_config(base, {"model.arch=mamba1", "model.expand=0"}, "x"),
                   "model.expand");
  EXPECT_SSM_ERROR(parse_config(base, {"model.arch=mamba1", "data.train_size=0"}, "x"),
                   "data.train_size");
  EXPECT_SSM_ERROR(parse_config(base, {"model.arch=mamba1", "data.bogus=1"}, "x"), "data.bogus");
  // train.device: cpu or cuda, and cuda only for the models with CUDA kernels.
  EXPECT_SSM_ERROR(parse_config(base, {"model.arch=mamba1", "train.device=gpu"}, "x"),
                   "train.device", "gpu");
  EXPECT_SSM_ERROR(parse_config(base, {"model.arch=mamba3", "train.device=cuda"}, "x"),
                   "train.device", "mamba3");
  EXPECT_SSM_ERROR(parse_config("[data]\ndataset = \"mnist\"\n", {"train.device=cuda"}, "x"),
                   "train.device", "s4d");
  if (!cuda::available()) {  // a machine without a GPU says so when the run starts
    const RunConfig c = tiny_mqar({"train.device=cuda"});
    EXPECT_SSM_ERROR(ssm::train::train(c, fresh_dir("nocuda"), false), "train.device", "cuda");
  }
  EXPECT_SSM_ERROR(parse_config("[data]\ndataset = \"text\"\n", {"model.arch=mamba1"}, "x"),
                   "data.path");
  EXPECT_SSM_ERROR(
      parse_config("[data]\ndataset = \"text\"\npath = \"a.txt\"\nval_fraction = 1.5\n",
                   {"model.arch=mamba1"}, "x"),
      "data.val_fraction");
  EXPECT_SSM_ERROR(parse_config("[model]\narch = \"mamba1\"\n", {}, "x"), "model.arch",
                   "fashion-mnist");
  // A model vocabulary smaller than the task's is refused when the data is known.
  const RunConfig small = tiny_mqar({"model.vocab_size=10"});
  EXPECT_SSM_ERROR(resolve_config(small, load_task_data(small)), "model.vocab_size", "10", "24");
}

class LmArch : public ::testing::TestWithParam<const char*> {
 protected:
  // mamba2, mamba3: D_inner 32 in 4 heads of 8.
  RunConfig config(std::vector<std::string> overrides = {}) const {
    overrides.push_back(std::string("model.arch=") + GetParam());
    overrides.push_back("model.head_dim=8");
    return tiny_mqar(overrides);
  }
};
INSTANTIATE_TEST_SUITE_P(Archs, LmArch, ::testing::Values("mamba1", "mamba2", "mamba3"));

TEST_P(LmArch, TargetRowLossEqualsFullForwardLossAndStepModeAgrees) {
  const RunConfig c = config();
  const TaskData task = load_task_data(c);
  const RunConfig r = resolve_config(c, task);
  EXPECT_EQ(r.model.vocab_size, 24);
  LanguageModelTaskModel model(r.model, 5);
  data::DataLoader loader(task.val, {8, false, false, 0}, task.collate);
  const data::Batch b = loader.batch(0);
  const BatchResult out = model.run(b, false);
  // Loss over the target positions only = cross_entropy of the full logits with ignore_index.
  const Tensor full = cross_entropy(model.lm().forward(b.inputs), b.targets);
  EXPECT_NEAR(out.loss.item(), full.item(), 1e-6 * full.item());
  EXPECT_EQ(out.targets, 8 * 4);
  EXPECT_EQ(out.examples, 8);
  const BatchResult step = model.run(b, true);
  EXPECT_NEAR(step.loss.item(), out.loss.item(), 1e-5 * out.loss.item());
  EXPECT_EQ(step.correct, out.correct);
  // Gradients reach every parameter through the gathered rows.
  out.loss.backward();
  for (const auto& p : model.module().named_parameters()) {
    ASSERT_TRUE(p.tensor.grad().defined()) << p.name;
    double norm = 0;
    for (double v : p.tensor.grad().to_vector()) norm += v * v;
    EXPECT_GT(norm, 0) << p.name;
  }
}

TEST_P(LmArch, LossDropsOnATinyTokenTask) {
  const RunConfig c = config({"train.epochs=2"});  // 60 steps
  const std::string dir = fresh_dir(std::string("learn_") + GetParam());
  const TrainResult r = ssm::train::train(c, dir, false);
  EXPECT_EQ(r.steps, 60);
  MetricsLog log(dir + "/metrics.jsonl");
  std::vector<double> losses;
  for (const auto& rec : log.records())
    if (rec.contains("train_loss")) losses.push_back(rec["train_loss"].get<double>());
  ASSERT_EQ(losses.size(), 60u);
  // Uniform guessing over 24 ids costs ln 24 = 3.18 nats; knowing that answers are values
  // (12 of them) already gives ln 12 = 2.48, and recalling some pairs less.
  const double first = (losses[0] + losses[1] + losses[2]) / 3;
  const double last = (losses[57] + losses[58] + losses[59]) / 3;
  EXPECT_GT(first, 2.9);
  EXPECT_LT(last, 0.8 * first);
  EXPECT_LT(r.val.loss, 2.6);
  EXPECT_GE(r.test.example_accuracy, 0.0);
  EXPECT_TRUE(std::isnan(r.test.bpc));
  EXPECT_TRUE(fs::exists(dir + "/curves.svg"));
  fs::remove_all(dir);
}

TEST(LmTrainer, ResumedRunEqualsUninterruptedRun) {
  const RunConfig c = tiny_mqar({"data.train_size=192", "train.epochs=2"});  // 12 steps of 16
  const std::string full = fresh_dir("full"), cut = fresh_dir("cut");
  const TrainResult a = ssm::train::train(c, full, false);
  EXPECT_EQ(a.steps, 24);
  // Stopped after step 13 (checkpoint at 10, across the epoch boundary), then resumed.
  ssm::train::train(c, cut, false, 13);
  const TrainResult b = ssm::train::train(c, cut, true);
  EXPECT_EQ(b.steps, 24);
  io::Checkpoint ca = io::load_checkpoint(full), cb = io::load_checkpoint(cut);
  ASSERT_EQ(ca.model_state.size(), cb.model_state.size());
  for (const auto& [name, t] : ca.model_state)
    EXPECT_EQ(t.to_vector(), cb.model_state.at(name).to_vector()) << name;
  EXPECT_DOUBLE_EQ(a.test.loss, b.test.loss);
  EXPECT_DOUBLE_EQ(a.test.example_accuracy, b.test.example_accuracy);
  MetricsLog log(cut + "/metrics.jsonl");
  int train_records = 0;
  for (const auto& rec : log.records()) train_records += rec.contains("train_loss");
  EXPECT_EQ(train_records, 24);
  fs::remove_all(full);
  fs::remove_all(cut);
}

TEST(LmTrainer, InitFromStartsFromAnotherRunsWeights) {
  const std::string first = fresh_dir("init_first"), second = fresh_dir("init_second"),
                    fresh = fresh_dir("init_fresh");
  ssm::train::train(tiny_mqar({"train.max_steps=6"}), first, false);
  // A curriculum's next stage: longer sequences, weights from the first run. With a learning
  // rate of 1e-30 the one step changes no float32 weight, so the checkpoint must equal the
  // first run's exactly; the same run without init_from starts from its own random draw.
  const std::vector<std::string> next = {"data.seq_len=32", "train.max_steps=1", "train.lr=1e-30",
                                         "train.ssm_lr=1e-30", "train.warmup_steps=0"};
  std::vector<std::string> with_init = next;
  with_init.push_back("train.init_from=" + first);
  ssm::train::train(tiny_mqar(with_init), second, false);
  ssm::train::train(tiny_mqar(next), fresh, false);
  const io::Checkpoint a = io::load_checkpoint(first), b = io::load_checkpoint(second),
                       c = io::load_checkpoint(fresh);
  int differ_from_fresh = 0;
  for (const auto& [name, t] : a.model_state) {
    EXPECT_EQ(t.to_vector(), b.model_state.at(name).to_vector()) << name;
    differ_from_fresh += t.to_vector() != c.model_state.at(name).to_vector();
  }
  EXPECT_GT(differ_from_fresh, 0);
  // The resolved config records the source run by its absolute path.
  const RunConfig recorded = load_config(second + "/config.toml", {});
  EXPECT_EQ(recorded.train.init_from, fs::absolute(first).lexically_normal().string());

  // A directory without a checkpoint, and a run of another shape: one line naming the key,
  // and for the shape the tensor and both shapes.
  const std::string bad = fresh_dir("init_bad");
  try {
    ssm::train::train(tiny_mqar({"train.init_from=" + fresh_dir("nowhere")}), bad, false);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'train.init_from'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("holds no checkpoint"), std::string::npos) << e.what();
  }
  fs::remove_all(bad);
  try {
    ssm::train::train(tiny_mqar({"model.d_model=8", "train.init_from=" + first}), bad, false);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'train.init_from'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("has shape"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  for (const auto& d : {first, second, fresh, bad}) fs::remove_all(d);
}

TEST(LmTrainer, TextRunReportsBitsPerByteAndLoadsBackAsALanguageModel) {
  // A text with structure to learn: words from a small set, separated by spaces.
  const std::string path = fresh_dir("text") + ".txt";
  {
    const char* words[] = {"the ", "cat ", "sat ", "on ", "a ", "mat. "};
    Generator g(2);
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 3000; ++i) out << words[g.below(6)];
  }
  const std::string dir = fresh_dir("textrun");
  const RunConfig c = parse_config(
      "[model]\narch = \"mamba1\"\nd_model = 16\nd_state = 4\nn_layers = 1\n"
      "[data]\ndataset = \"text\"\nseq_len = 32\n"
      "[train]\nbatch_size = 16\nepochs = 10\nmax_steps = 40\nlr = 0.02\nssm_lr = 0.02\n"
      "log_every = 10\n",
      {"data.path=" + path}, "text");
  const TrainResult r = ssm::train::train(c, dir, false);
  EXPECT_EQ(r.steps, 40);
  EXPECT_NEAR(r.val.bpc, r.val.loss / std::log(2.0), 1e-12);
  // Well below the 8 bits of the untrained model's uniform guess and the ~3.5 bits of the letters
  // alone.
  EXPECT_LT(r.val.bpc, 3.0);
  // The run's test split is its validation split.
  EXPECT_DOUBLE_EQ(r.test.loss, r.val.loss);
  MetricsLog log(dir + "/metrics.jsonl");
  bool has_val_bpc = false;
  for (const auto& rec : log.records()) has_val_bpc |= rec.contains("val_bpc");
  EXPECT_TRUE(has_val_bpc);
  // The run directory is a language model again, with the absolute data path recorded.
  ASSERT_TRUE(is_run_dir(dir));
  const TrainedLanguageModel lm = load_trained_language_model(dir);
  EXPECT_EQ(lm.config.model.vocab_size, 256);
  EXPECT_TRUE(fs::path(lm.config.data.path).is_absolute());
  const Tensor logits =
      lm.model->forward(Tensor::from_data(std::vector<int64_t>{116, 104}, {1, 2}));
  EXPECT_EQ(logits.size(2), 256);
  fs::remove_all(dir);
  fs::remove(path);
}
