#include "ssm/data/dataloader.h"

#include <numeric>

#include "ssm/core/rng.h"

namespace ssm::data {

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options,
                       CollateFn collate)
    : dataset_(std::move(dataset)), options_(options), collate_(std::move(collate)) {
  SSM_CHECK(dataset_ != nullptr, "DataLoader: argument 'dataset' is null");
  SSM_CHECK(options_.batch_size >= 1, "DataLoader: argument 'batch_size' expected >= 1, got {}",
            options_.batch_size);
  SSM_CHECK(collate_ != nullptr, "DataLoader: argument 'collate' is empty");
  set_epoch(0);
}

void DataLoader::set_epoch(int64_t epoch) {
  SSM_CHECK(epoch >= 0, "DataLoader::set_epoch: argument 'epoch' expected >= 0, got {}", epoch);
  epoch_ = epoch;
  order_.resize(static_cast<size_t>(dataset_->size()));
  std::iota(order_.begin(), order_.end(), int64_t{0});
  if (!options_.shuffle) return;
  // One generator per (seed, epoch): mixing the epoch in through an odd multiplier keeps
  // neighbouring epochs' seeds far apart (the Generator's SplitMix64 seeding spreads them).
  Generator gen(options_.seed ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(epoch + 1)));
  for (size_t i = order_.size(); i > 1; --i) {  // Fisher–Yates
    const size_t j = static_cast<size_t>(gen.below(i));
    std::swap(order_[i - 1], order_[j]);
  }
}

int64_t DataLoader::num_batches() const {
  const int64_t n = static_cast<int64_t>(order_.size()), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

Batch DataLoader::batch(int64_t index) const {
  SSM_CHECK(index >= 0 && index < num_batches(),
            "DataLoader::batch: argument 'index' expected in [0, {}), got {}", num_batches(),
            index);
  const int64_t begin = index * options_.batch_size;
  const int64_t end = std::min<int64_t>(begin + options_.batch_size, order_.size());
  std::vector<Example> examples(static_cast<size_t>(end - begin));
  for (int64_t i = begin; i < end; ++i) examples[i - begin] = dataset_->get(order_[i]);
  return collate_(examples);
}

}  // namespace ssm::data
