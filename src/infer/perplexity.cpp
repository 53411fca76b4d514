#include "ssm/infer/perplexity.h"

#include <algorithm>
#include <cmath>

#include "ssm/autograd/node.h"

namespace ssm::infer {

namespace {

// Σ over the windows' positions l < n − 1 of −log softmax(logits[w, l])[ids[w, l + 1]], in
// double with the max subtracted.
double window_nll_sum(const Tensor& logits_any, const std::vector<int64_t>& ids, int64_t count,
                      int64_t n) {
  const Tensor logits = logits_any.to(Device::CPU).to(DType::F64).contiguous();  // (count, n, V)
  const int64_t V = logits.size(2);
  const double* p = logits.data<double>();
  double total = 0;
  for (int64_t w = 0; w < count; ++w)
    for (int64_t l = 0; l + 1 < n; ++l) {
      const double* row = p + (w * n + l) * V;
      const double top = *std::max_element(row, row + V);
      double z = 0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - top);
      const int64_t next = ids[static_cast<size_t>(w * n + l + 1)];
      total += top + std::log(z) - row[next];
    }
  return total;
}

}  // namespace

PerplexityResult perplexity(const nn::MambaLM& model, const std::vector<int64_t>& tokens,
                            int64_t context, int64_t batch) {
  SSM_CHECK(context >= 2, "perplexity: context expected ≥ 2 tokens, got {}", context);
  SSM_CHECK(batch >= 1, "perplexity: batch expected ≥ 1, got {}", batch);
  const auto T = static_cast<int64_t>(tokens.size());
  SSM_CHECK(T >= context, "perplexity: a context of {} tokens is longer than the text's {} tokens",
            context, T);
  const int64_t V = model.config.vocab_size;
  for (int64_t i = 0; i < T; ++i)
    SSM_CHECK(tokens[static_cast<size_t>(i)] >= 0 && tokens[static_cast<size_t>(i)] < V,
              "perplexity: token {} at position {} is outside the model's vocabulary of {}",
              tokens[static_cast<size_t>(i)], i, V);
  NoGradGuard no_grad;
  PerplexityResult r;
  double nll = 0;
  // Runs `count` windows of n tokens starting at token `first`, one after another.
  auto run = [&](int64_t first, int64_t count, int64_t n) {
    std::vector<int64_t> ids(tokens.begin() + first, tokens.begin() + first + count * n);
    const Tensor logits = model.forward(Tensor::from_data(ids, {count, n}));
    nll += window_nll_sum(logits, ids, count, n);
    r.tokens += count * (n - 1);
    r.windows += count;
  };
  const int64_t full = T / context;
  for (int64_t w = 0; w < full; w += batch) run(w * context, std::min(batch, full - w), context);
  const int64_t rest = T - full * context;
  if (rest >= 2) run(full * context, 1, rest);
  r.mean_nll = nll / static_cast<double>(r.tokens);
  r.perplexity = std::exp(r.mean_nll);
  return r;
}

}  // namespace ssm::infer
