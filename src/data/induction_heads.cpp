#include "ssm/data/induction_heads.h"

namespace ssm::data {

int64_t induction_heads_vocab(const InductionHeadsOptions& o) {
  return o.vocab_size + 1;
}

void validate(const InductionHeadsOptions& o, const std::string& p) {
  // special, b, …, special: at least three positions.
  check_at_least(o.seq_len, 3, "induction-heads", p, "seq_len");
  check_at_least(o.vocab_size, 2, "induction-heads", p, "vocab_size");
}

TokenSequence make_induction_heads(const InductionHeadsOptions& o, Generator& gen) {
  validate(o);
  const int64_t L = o.seq_len;
  const auto V = static_cast<uint64_t>(o.vocab_size);
  TokenSequence s;
  s.input.resize(static_cast<size_t>(L));
  for (auto& t : s.input) t = static_cast<int64_t>(gen.below(V));
  s.target.assign(static_cast<size_t>(L), kIgnoreIndex);
  // The special token at p ∈ [0, L − 3], b right after it, the query at L − 1.
  const auto p = static_cast<size_t>(gen.below(static_cast<uint64_t>(L - 2)));
  const int64_t b = s.input[p + 1];
  s.input[p] = induction_heads_special(o);
  s.input[static_cast<size_t>(L - 1)] = induction_heads_special(o);
  s.target[static_cast<size_t>(L - 1)] = b;
  return s;
}

}  // namespace ssm::data
