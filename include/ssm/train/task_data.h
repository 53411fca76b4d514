#pragma once
// Builds the train / validation / test datasets a config names, with how to batch them.
#include <memory>

#include "ssm/data/dataloader.h"
#include "ssm/train/config.h"

namespace ssm::train {

struct TaskData {
  std::shared_ptr<const data::Dataset> train, val, test;
  data::CollateFn collate;
  int64_t sequence_length = 0;  // longest input length (for model.max_length checks)
  int64_t num_classes = 0;
  int64_t input_dim = 0;        // features per position (linear encoder) or vocabulary size
  bool token_inputs = false;
  // Token tasks: targets per position (B, L) with kIgnoreIndex where no loss applies.
  bool language_model = false;
  bool byte_level = false;          // text: losses are also reported in bits per byte
  bool example_accuracy = false;    // generated tasks: report the fraction of examples solved
};

TaskData load_task_data(const RunConfig& config);

// The seed of a generated task's split (0 train, 1 validation, 2 test).
uint64_t split_seed(uint64_t train_seed, int split);

// A view of examples [begin, begin + count) of another dataset.
class SubsetDataset : public data::Dataset {
 public:
  SubsetDataset(std::shared_ptr<const data::Dataset> base, int64_t begin, int64_t count);
  int64_t size() const override { return count_; }
  data::Example get(int64_t i) const override { return base_->get(begin_ + i); }

 private:
  std::shared_ptr<const data::Dataset> base_;
  int64_t begin_, count_;
};

}  // namespace ssm::train
