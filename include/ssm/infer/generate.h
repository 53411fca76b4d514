#pragma once
// Autoregressive generation with a Mamba LM: the prompt runs once in parallel mode (prefill),
// then one recurrent step per new token, so each token costs O(1) in the sequence length.
// Generation can also continue from a saved decode state (see ssm/io/state_file.h): the
// state's pending token and then the prompt are fed through recurrent steps.
#include <cstdint>
#include <functional>
#include <vector>

#include "ssm/core/rng.h"
#include "ssm/nn/mamba_lm.h"

namespace ssm::infer {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy (argmax; ties go to the lowest id)
  int64_t top_k = 0;         // keep the k most likely tokens; 0 = all
  double top_p = 1.0;        // keep the smallest set whose probability reaches top_p; 1 = all
};

// Draws one token id from logits (V) (any float dtype). Throws for NaN logits or bad options.
int64_t sample_token(const Tensor& logits, const SamplingOptions& options, Generator& gen);

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  SamplingOptions sampling;
  uint64_t seed = 0;
  int64_t eos_id = -1;  // stop after emitting this id; −1: never stop early
  // Continue from `start_state` (batch 1; not modified), the state after some earlier text,
  // instead of an empty one; `start_token` (>= 0) is that text's last token, not yet fed, or
  // −1. The prompt follows; it may be empty when start_token is given.
  const nn::MambaLMCache* start_state = nullptr;
  int64_t start_token = -1;
  // A model on the GPU decodes through one CUDA graph replayed per token (GraphedDecoder);
  // false steps op by op (the same numbers, slower at small batch).
  bool cuda_graph = true;
};

struct GenerateResult {
  std::vector<int64_t> ids;  // the generated ids only (without the prompt)
  double prompt_tokens_per_s = 0;
  double gen_tokens_per_s = 0;
  // The state after every token but the last generated one (ids.back(), not yet fed): passing
  // it as start_state with start_token = ids.back() continues exactly where this call stopped.
  nn::MambaLMCache state;
};

// Called with each new id as soon as it is chosen; return false to stop.
using TokenCallback = std::function<bool(int64_t)>;

// Batch of one. `prompt` must not be empty (unless continuing from a start_token);
// max_new_tokens > 0.
GenerateResult generate(const nn::MambaLM& model, const std::vector<int64_t>& prompt,
                        const GenerateOptions& options, const TokenCallback& on_token = {});

}  // namespace ssm::infer
