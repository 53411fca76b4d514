#pragma once
// Perplexity of a token sequence under a language model, the model-level numerics check of
// LM engines: the sequence is cut into non-overlapping windows of `context` tokens from the
// start (the last window holds the rest, and is skipped when that is a single token); each
// window runs from an empty state, and every token after the first of a window is scored by
// the model's prediction from the tokens before it in the window.
//   perplexity = exp(mean over scored tokens of −log p(token | window prefix)).
#include <cstdint>
#include <vector>

#include "ssm/nn/mamba_lm.h"

namespace ssm::infer {

struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;  // nats per scored token
  int64_t tokens = 0;   // scored tokens
  int64_t windows = 0;
};

// Errors: context < 2, fewer tokens than one window of `context`, an id outside the model's
// vocabulary. Windows of equal length run in batches of up to `batch` (it changes nothing
// but speed).
PerplexityResult perplexity(const nn::MambaLM& model, const std::vector<int64_t>& tokens,
                            int64_t context, int64_t batch = 8);

}  // namespace ssm::infer
