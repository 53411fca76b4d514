#pragma once
// Induction heads (Olsson et al. 2022; the Mamba paper's §4.1 setting): a random sequence
// over vocab_size tokens in which a special token is followed once by some token b; the
// sequence ends with the special token again and the model must answer b. Trained at one
// length and evaluated at others, it measures whether recall extrapolates in length.
//   ids: 0..vocab_size − 1 ordinary tokens, vocab_size the special token (vocabulary
//        vocab_size + 1); the ordinary tokens never include the special one.
//   target: kIgnoreIndex everywhere except the last position, whose target is b.
#include <cstdint>
#include <string>

#include "ssm/data/token_task.h"

namespace ssm::data {

struct InductionHeadsOptions {
  int64_t seq_len = 256;
  int64_t vocab_size = 16;  // ordinary tokens
};

int64_t induction_heads_vocab(const InductionHeadsOptions& o);  // vocab_size + 1
inline int64_t induction_heads_special(const InductionHeadsOptions& o) {
  return o.vocab_size;
}
void validate(const InductionHeadsOptions& o, const std::string& key_prefix = "");
TokenSequence make_induction_heads(const InductionHeadsOptions& o, Generator& gen);

}  // namespace ssm::data
