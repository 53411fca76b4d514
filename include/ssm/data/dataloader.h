#pragma once
// DataLoader: splits a dataset into batches, in order or shuffled per epoch. The order of
// epoch e is a pure function of (seed, e), so a run resumed at any epoch sees the same
// batches as an uninterrupted one.
#include <cstdint>
#include <memory>
#include <vector>

#include "ssm/data/dataset.h"

namespace ssm::data {

struct DataLoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = false;
  bool drop_last = false;  // drop the last batch when it is smaller than batch_size
  uint64_t seed = 0;       // shuffling seed
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options,
             CollateFn collate = stack_examples);

  // Chooses the example order of `epoch` (starts at epoch 0).
  void set_epoch(int64_t epoch);
  int64_t epoch() const { return epoch_; }
  int64_t num_batches() const;
  // Batch `index` of the current epoch (0 ≤ index < num_batches()).
  Batch batch(int64_t index) const;
  // Dataset indices of the current epoch, in the order they are batched.
  const std::vector<int64_t>& order() const { return order_; }
  const Dataset& dataset() const { return *dataset_; }
  const DataLoaderOptions& options() const { return options_; }

  class Iterator {
   public:
    Iterator(const DataLoader* loader, int64_t index) : loader_(loader), index_(index) {}
    Batch operator*() const { return loader_->batch(index_); }
    Iterator& operator++() {
      ++index_;
      return *this;
    }
    bool operator!=(const Iterator& other) const { return index_ != other.index_; }

   private:
    const DataLoader* loader_;
    int64_t index_;
  };
  // Iterates the batches of the current epoch.
  Iterator begin() const { return Iterator(this, 0); }
  Iterator end() const { return Iterator(this, num_batches()); }

 private:
  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
  CollateFn collate_;
  int64_t epoch_ = 0;
  std::vector<int64_t> order_;
};

}  // namespace ssm::data
