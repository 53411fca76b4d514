#include "ssm/data/selective_copy.h"

#include "ssm/core/error.h"

namespace ssm::data {

int64_t selective_copy_vocab(const SelectiveCopyOptions& o) {
  return o.vocab_size + 2;
}

void validate(const SelectiveCopyOptions& o, const std::string& p) {
  check_at_least(o.num_tokens, 1, "selective-copy", p, "num_tokens");
  check_at_least(o.vocab_size, 1, "selective-copy", p, "vocab_size");
  // The data tokens need num_tokens distinct places before the markers.
  SSM_CHECK(o.seq_len >= 2 * o.num_tokens,
            "selective-copy: '{}seq_len' ({}) must be ≥ 2 × '{}num_tokens' ({}) to hold the data "
            "tokens and the markers",
            p, o.seq_len, p, o.num_tokens);
}

TokenSequence make_selective_copy(const SelectiveCopyOptions& o, Generator& gen) {
  validate(o);
  const int64_t L = o.seq_len, M = o.num_tokens, prefix = L - M;
  TokenSequence s;
  s.input.assign(static_cast<size_t>(L), 0);
  s.target.assign(static_cast<size_t>(L), kIgnoreIndex);
  const std::vector<int64_t> where = sample_sorted_positions(prefix, M, gen);
  for (int64_t k = 0; k < M; ++k) {
    const int64_t token = 1 + static_cast<int64_t>(gen.below(static_cast<uint64_t>(o.vocab_size)));
    s.input[static_cast<size_t>(where[k])] = token;
    s.input[static_cast<size_t>(prefix + k)] = selective_copy_marker(o);
    s.target[static_cast<size_t>(prefix + k)] = token;
  }
  return s;
}

}  // namespace ssm::data
