#include "ssm/data/mqar.h"

#include <numeric>

#include "ssm/core/error.h"

namespace ssm::data {

void validate(const MqarOptions& o, const std::string& p) {
  check_at_least(o.num_pairs, 1, "mqar", p, "num_pairs");
  check_at_least(o.vocab_size, 4, "mqar", p, "vocab_size");
  const int64_t keys = o.vocab_size / 2 - 1;
  SSM_CHECK(o.num_pairs <= keys,
            "mqar: '{}num_pairs' ({}) must be ≤ the {} distinct keys of '{}vocab_size' {}", p,
            o.num_pairs, keys, p, o.vocab_size);
  // The context takes 2·P positions and the P queries (key, value) another 2·P.
  SSM_CHECK(o.seq_len >= 4 * o.num_pairs,
            "mqar: '{}seq_len' ({}) must be ≥ 4 × '{}num_pairs' ({}) to hold the pairs and the "
            "queries",
            p, o.seq_len, p, o.num_pairs);
}

TokenSequence make_mqar(const MqarOptions& o, Generator& gen) {
  validate(o);
  const int64_t P = o.num_pairs, half = o.vocab_size / 2;
  // P distinct keys from [1, half): a partial Fisher–Yates shuffle.
  std::vector<int64_t> key_pool(static_cast<size_t>(half - 1));
  std::iota(key_pool.begin(), key_pool.end(), 1);
  std::vector<int64_t> keys(static_cast<size_t>(P)), values(static_cast<size_t>(P));
  for (int64_t i = 0; i < P; ++i) {
    const auto j = i + static_cast<int64_t>(gen.below(static_cast<uint64_t>(half - 1 - i)));
    std::swap(key_pool[static_cast<size_t>(i)], key_pool[static_cast<size_t>(j)]);
    keys[static_cast<size_t>(i)] = key_pool[static_cast<size_t>(i)];
    values[static_cast<size_t>(i)] =
        half + static_cast<int64_t>(gen.below(static_cast<uint64_t>(o.vocab_size - half)));
  }
  TokenSequence s;
  s.input.assign(static_cast<size_t>(o.seq_len), 0);
  s.target.assign(static_cast<size_t>(o.seq_len), kIgnoreIndex);
  for (int64_t i = 0; i < P; ++i) {
    s.input[static_cast<size_t>(2 * i)] = keys[static_cast<size_t>(i)];
    s.input[static_cast<size_t>(2 * i + 1)] = values[static_cast<size_t>(i)];
  }
  // Query order: a random permutation of the pairs.
  std::vector<int64_t> order(static_cast<size_t>(P));
  std::iota(order.begin(), order.end(), 0);
  for (int64_t i = P - 1; i > 0; --i)
    std::swap(order[static_cast<size_t>(i)],
              order[static_cast<size_t>(gen.below(static_cast<uint64_t>(i + 1)))]);
  // Query places: P of the (L − 2P) / 2 two-token slots after the context.
  const std::vector<int64_t> slots = sample_sorted_positions((o.seq_len - 2 * P) / 2, P, gen);
  for (int64_t q = 0; q < P; ++q) {
    const auto at = static_cast<size_t>(2 * P + 2 * slots[static_cast<size_t>(q)]);
    const auto pair = static_cast<size_t>(order[static_cast<size_t>(q)]);
    s.input[at] = keys[pair];
    s.input[at + 1] = values[pair];
    s.target[at] = values[pair];
  }
  return s;
}

}  // namespace ssm::data
