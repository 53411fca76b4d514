#pragma once
// Selective copying (Mamba paper, §4.1): num_tokens data tokens scattered at random
// positions among noise, followed by num_tokens markers; at the k-th marker the model must
// output the k-th data token. Unlike plain copying the spacing varies, so a time-invariant
// model cannot solve it by a fixed delay: it has to select by content.
//   ids: 0 noise, 1..vocab_size data tokens, vocab_size + 1 marker (vocabulary vocab_size + 2)
//   input:  [noise and data tokens over seq_len − num_tokens positions] [num_tokens markers]
//   target: kIgnoreIndex everywhere except at the markers, where it is the data tokens in order.
#include <cstdint>
#include <string>

#include "ssm/data/token_task.h"

namespace ssm::data {

struct SelectiveCopyOptions {
  int64_t seq_len = 4096;   // whole sequence, markers included
  int64_t num_tokens = 16;  // data tokens to copy
  int64_t vocab_size = 16;  // distinct data tokens
};

// The ids the model must accept: vocab_size + 2.
int64_t selective_copy_vocab(const SelectiveCopyOptions& o);
inline int64_t selective_copy_marker(const SelectiveCopyOptions& o) {
  return o.vocab_size + 1;
}
// Errors name the option as key_prefix + field ("data.num_tokens" for the trainer).
void validate(const SelectiveCopyOptions& o, const std::string& key_prefix = "");
TokenSequence make_selective_copy(const SelectiveCopyOptions& o, Generator& gen);

}  // namespace ssm::data
