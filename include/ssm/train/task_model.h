#pragma once
// What the trainer needs from a model and its task, so that one training loop serves both
// sequence classification (SequenceClassifier: one class per example) and the token tasks
// (MambaLM: a target per position, kIgnoreIndex where none). A batch goes in; the loss and
// the counts the metrics are made of come out.
#include <cstdint>
#include <memory>
#include <string>

#include "ssm/data/dataset.h"
#include "ssm/nn/mamba_lm.h"
#include "ssm/nn/sequence_model.h"
#include "ssm/train/config.h"
#include "ssm/train/task_data.h"

namespace ssm::train {

struct BatchResult {
  Tensor loss;                   // scalar mean over the counted targets (differentiable)
  int64_t targets = 0;           // counted targets: one per example, or the target tokens
  int64_t correct = 0;           // targets the argmax of the logits gets right
  int64_t examples = 0;          // examples in the batch
  int64_t examples_correct = 0;  // examples whose every counted target is right
};

class TaskModel {
 public:
  virtual ~TaskModel() = default;
  virtual nn::Module& module() = 0;
  // recurrent: run the model in its streaming mode, position by position (evaluation only).
  virtual BatchResult run(const data::Batch& batch, bool recurrent) = 0;
  // Re-seeds dropout masks from (seed, step) so a resumed run draws the same masks.
  virtual void reseed_dropout(uint64_t seed, int64_t step) = 0;
  virtual std::string name() const = 0;  // "s4d", "mamba1", …
};

// model.layer's SequenceClassifier; logits (B, n_classes) against targets (B).
class ClassifierTaskModel : public TaskModel {
 public:
  ClassifierTaskModel(const ModelConfig& config, uint64_t seed);
  nn::Module& module() override { return model_; }
  BatchResult run(const data::Batch& batch, bool recurrent) override;
  void reseed_dropout(uint64_t seed, int64_t step) override { model_.reseed_dropout(seed, step); }
  std::string name() const override { return model_.config().layer; }

 private:
  nn::SequenceClassifier model_;
};

// A MambaLM of model.arch; ids (B, L) against targets (B, L). The logits are computed only at
// positions with a target (the hidden states of those rows go through the final norm and the
// head), which matters when the vocabulary is large and targets are few (MQAR).
class LanguageModelTaskModel : public TaskModel {
 public:
  LanguageModelTaskModel(const ModelConfig& config, uint64_t seed);
  nn::Module& module() override { return *model_; }
  BatchResult run(const data::Batch& batch, bool recurrent) override;
  void reseed_dropout(uint64_t, int64_t) override {}  // no dropout
  std::string name() const override { return arch_; }
  nn::MambaLM& lm() { return *model_; }

 private:
  std::unique_ptr<nn::MambaLM> model_;
  std::string arch_;
};

// The MambaLM a (resolved) model config describes: arch, d_model, n_layers, d_state, expand,
// d_conv, dt_rank, head_dim, n_groups, vocab_size (which must be resolved, > 0).
std::unique_ptr<nn::MambaLM> make_language_model(const ModelConfig& config, uint64_t seed);

// Fills in what the config leaves to the data (model.max_length, model.vocab_size; data.path
// made absolute) and checks the model against the data (d_input, n_classes, vocabulary,
// lengths), naming the keys.
RunConfig resolve_config(const RunConfig& config, const TaskData& task);
// The model of a resolved config, initialised from train.seed.
std::unique_ptr<TaskModel> make_task_model(const RunConfig& resolved);

// A language model trained by `ssm train`, as its run directory holds it (config.toml and
// checkpoint.safetensors).
struct TrainedLanguageModel {
  RunConfig config;
  std::unique_ptr<nn::MambaLM> model;
};
bool is_run_dir(const std::string& dir);
TrainedLanguageModel load_trained_language_model(const std::string& run_dir);

}  // namespace ssm::train
