#include <algorithm>
#include <numeric>

#include "ssm/data/dataloader.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::data;

namespace {

// Example i: input (2,) = [i, 10 + i] float32, target () = i int64.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  Example get(int64_t i) const override {
    return {Tensor::from_vector({double(i), 10.0 + i}, {2}, DType::F32),
            Tensor::full({}, double(i), DType::I64)};
  }

 private:
  int64_t n_;
};

// Example i: input (i % 3 + 1,) int64 filled with i + 1, target () = i.
class RaggedDataset : public Dataset {
 public:
  int64_t size() const override { return 7; }
  Example get(int64_t i) const override {
    return {Tensor::full({i % 3 + 1}, double(i + 1), DType::I64),
            Tensor::full({}, double(i), DType::I64)};
  }
};

std::vector<int64_t> targets_in_epoch(const DataLoader& loader) {
  std::vector<int64_t> out;
  for (Batch b : loader)
    for (double t : b.targets.to_vector()) out.push_back(static_cast<int64_t>(t));
  return out;
}

}  // namespace

TEST(Collate, StackExamples) {
  CountingDataset ds(5);
  Batch b = stack_examples({ds.get(3), ds.get(1)});
  EXPECT_EQ(b.inputs.shape(), (Shape{2, 2}));
  EXPECT_EQ(b.inputs.dtype(), DType::F32);
  EXPECT_EQ(b.inputs.to_vector(), (std::vector<double>{3, 13, 1, 11}));
  EXPECT_EQ(b.targets.shape(), (Shape{2}));
  EXPECT_EQ(b.targets.to_vector(), (std::vector<double>{3, 1}));
  EXPECT_FALSE(b.lengths.defined());
  EXPECT_SSM_ERROR(stack_examples({ds.get(0), {Tensor::zeros({3}), ds.get(0).target}}),
                   "stack_examples", "input 1", "(3)", "(2)");
  EXPECT_SSM_ERROR(stack_examples({}), "stack_examples", "empty");
}

TEST(Collate, PadExamplesRecordsLengths) {
  RaggedDataset ds;
  Batch b = pad_examples({ds.get(0), ds.get(2), ds.get(4)}, -1);  // lengths 1, 3, 2
  EXPECT_EQ(b.inputs.shape(), (Shape{3, 3}));
  EXPECT_EQ(b.inputs.dtype(), DType::I64);
  EXPECT_EQ(b.inputs.to_vector(), (std::vector<double>{1, -1, -1, 3, 3, 3, 5, 5, -1}));
  EXPECT_EQ(b.lengths.to_vector(), (std::vector<double>{1, 3, 2}));
  EXPECT_EQ(b.targets.to_vector(), (std::vector<double>{0, 2, 4}));
  // Trailing dims are kept: (L, 2) inputs pad to (B, Lmax, 2).
  Example a{Tensor::ones({1, 2}), Tensor::zeros({})}, c{Tensor::ones({3, 2}), Tensor::zeros({})};
  Batch p = pad_examples({a, c});
  EXPECT_EQ(p.inputs.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(p.inputs.to_vector(), (std::vector<double>{1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1}));
  Example bad{Tensor::ones({2, 3}), Tensor::zeros({})};
  EXPECT_SSM_ERROR(pad_examples({a, bad}), "pad_examples", "input 1", "(2, 3)");
}

TEST(DataLoader, SequentialBatchesAndDropLast) {
  auto ds = std::make_shared<CountingDataset>(10);
  DataLoader keep(ds, {4, false, false, 0});
  EXPECT_EQ(keep.num_batches(), 3);
  EXPECT_EQ(keep.batch(2).inputs.shape(), (Shape{2, 2}));  // the short last batch
  std::vector<int64_t> all(10);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(targets_in_epoch(keep), all);
  DataLoader drop(ds, {4, false, true, 0});
  EXPECT_EQ(drop.num_batches(), 2);
  EXPECT_EQ(targets_in_epoch(drop).size(), 8u);
  EXPECT_SSM_ERROR(keep.batch(3), "DataLoader::batch", "index", "3");
  EXPECT_SSM_ERROR(DataLoader(ds, {0, false, false, 0}), "DataLoader", "batch_size", "0");
}

TEST(DataLoader, ShuffleIsAPermutationDeterministicPerSeedAndEpoch) {
  auto ds = std::make_shared<CountingDataset>(50);
  DataLoader a(ds, {8, true, false, 123}), b(ds, {8, true, false, 123}), c(ds, {8, true, false, 9});
  const auto e0 = targets_in_epoch(a);
  auto sorted = e0;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> all(50);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(sorted, all);              // every example exactly once
  EXPECT_NE(e0, all);                  // actually shuffled
  EXPECT_EQ(e0, targets_in_epoch(b));  // same seed, same order
  EXPECT_NE(e0, targets_in_epoch(c));  // other seed, other order
  a.set_epoch(1);
  const auto e1 = targets_in_epoch(a);
  EXPECT_NE(e1, e0);  // a new order each epoch
  b.set_epoch(1);
  EXPECT_EQ(targets_in_epoch(b), e1);  // ... reproducible when resuming at epoch 1
  a.set_epoch(0);
  EXPECT_EQ(targets_in_epoch(a), e0);
  // Batch contents are the dataset's examples in the epoch's order.
  Batch first = a.batch(0);
  for (int64_t k = 0; k < 8; ++k) EXPECT_EQ(first.inputs.at({k, 1}), 10.0 + a.order()[k]);
}

TEST(DataLoader, PaddingCollate) {
  auto ds = std::make_shared<RaggedDataset>();
  DataLoader loader(ds, {4, false, false, 0},
                    [](const std::vector<Example>& ex) { return pad_examples(ex, 0); });
  Batch b = loader.batch(1);  // examples 4, 5, 6: lengths 2, 3, 1
  EXPECT_EQ(b.inputs.shape(), (Shape{3, 3}));
  EXPECT_EQ(b.lengths.to_vector(), (std::vector<double>{2, 3, 1}));
}
