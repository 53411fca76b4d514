#pragma once
// Multi-query associative recall (MQAR, Zoology: Arora et al. 2023): num_pairs key–value
// pairs, then each key queried once, in random order, at random places of the rest of the
// sequence; at each query the model must output the key's value.
//   ids: 0 blank, keys from [1, vocab_size/2), values from [vocab_size/2, vocab_size)
//   input:  k₁ v₁ k₂ v₂ … k_P v_P, then blanks with the P queries "k v" at random even
//           offsets (a query is followed by its value, as in Zoology, so the sequence reads
//           like its context; a causal model cannot see it before answering)
//   target: kIgnoreIndex everywhere except each query's key position, whose target is its value.
// Keys within one example are distinct; values may repeat. Zoology places the queries with a
// power-law gap distribution and can fill the blanks with random tokens; here the query
// places are uniform and the blanks are 0.
#include <cstdint>
#include <string>

#include "ssm/data/token_task.h"

namespace ssm::data {

struct MqarOptions {
  int64_t seq_len = 256;
  int64_t num_pairs = 16;
  int64_t vocab_size = 8192;  // all ids, blank included
};

inline int64_t mqar_vocab(const MqarOptions& o) {
  return o.vocab_size;
}
void validate(const MqarOptions& o, const std::string& key_prefix = "");
TokenSequence make_mqar(const MqarOptions& o, Generator& gen);

}  // namespace ssm::data
