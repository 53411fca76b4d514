#pragma once
// Autoregressive generation with a Mamba LM: the prompt runs once in parallel mode (prefill),
// then one recurrent step per new token, so each token costs O(1) in the sequence length.
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
};

struct GenerateResult {
  std::vector<int64_t> ids;  // the generated ids only (without the prompt)
  double prompt_tokens_per_s = 0;
  double gen_tokens_per_s = 0;
};

// Called with each new id as soon as it is chosen; return false to stop.
using TokenCallback = std::function<bool(int64_t)>;

// Batch of one. `prompt` must not be empty; max_new_tokens > 0.
GenerateResult generate(const nn::MambaLM& model, const std::vector<int64_t>& prompt,
                        const GenerateOptions& options, const TokenCallback& on_token = {});

}  // namespace ssm::infer
