#pragma once
// Token-sequence tasks for language models: every example is input ids (L) and target ids
// (L), with kIgnoreIndex where no loss applies (ssm::cross_entropy skips those positions).
// Synthetic tasks are generated on demand: example i of a split is a pure function of
// (seed, i), so an epoch of any size costs no memory and a resumed run sees the same data.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ssm/core/rng.h"
#include "ssm/data/dataset.h"

namespace ssm::data {

inline constexpr int64_t kIgnoreIndex = -100;

struct TokenSequence {
  std::vector<int64_t> input, target;  // equal lengths
};

// input (L) int64 and target (L) int64 tensors.
Example to_example(const TokenSequence& s);

// A seed for example `index` drawn from `seed` (well mixed: neighbouring indices and seeds
// give unrelated streams).
uint64_t example_seed(uint64_t seed, int64_t index);

// `size` examples, example i made by `make` from a Generator seeded with example_seed(seed, i).
class GeneratedTokenDataset : public Dataset {
 public:
  using MakeFn = std::function<TokenSequence(Generator&)>;
  GeneratedTokenDataset(int64_t size, uint64_t seed, MakeFn make);
  int64_t size() const override { return size_; }
  Example get(int64_t index) const override;
  TokenSequence sequence(int64_t index) const;

 private:
  int64_t size_;
  uint64_t seed_;
  MakeFn make_;
};

// `count` distinct positions in [0, n), ascending, uniformly among all such sets
// (selection sampling, O(n)).
std::vector<int64_t> sample_sorted_positions(int64_t n, int64_t count, Generator& gen);

// Throws "<task>: '<key_prefix><key>' must be ≥ <min>, got <value>". Generators name their
// options this way; the trainer passes key_prefix "data." so messages name the config key.
void check_at_least(int64_t value, int64_t min, const char* task, const std::string& key_prefix,
                    const char* key);

}  // namespace ssm::data
