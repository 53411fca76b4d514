#include "ssm/infer/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <numeric>
#include <tuple>

#include "ssm/autograd/node.h"
#include "ssm/infer/graphed_decoder.h"

namespace ssm::infer {

int64_t sample_token(const Tensor& logits_in, const SamplingOptions& o, Generator& gen) {
  SSM_CHECK(logits_in.defined() && logits_in.dim() == 1 && logits_in.numel() > 0,
            "sample_token: argument 'logits' expected shape (V) with V > 0, got {}",
            logits_in.defined() ? shape_str(logits_in.shape()) : "undefined");
  SSM_CHECK(o.temperature >= 0 && std::isfinite(o.temperature),
            "sample_token: temperature expected >= 0, got {}", o.temperature);
  SSM_CHECK(o.top_k >= 0, "sample_token: top_k expected >= 0, got {}", o.top_k);
  SSM_CHECK(o.top_p > 0 && o.top_p <= 1, "sample_token: top_p expected in (0, 1], got {}", o.top_p);
  const std::vector<double> logits = logits_in.to_vector();
  const int64_t V = static_cast<int64_t>(logits.size());
  for (int64_t v = 0; v < V; ++v)
    SSM_CHECK(!std::isnan(logits[v]), "sample_token: argument 'logits' has NaN at id {}", v);
  if (o.temperature == 0) return std::max_element(logits.begin(), logits.end()) - logits.begin();

  // Candidates by decreasing logit (ties: lower id first), cut to top_k.
  std::vector<int64_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  const int64_t k = o.top_k > 0 ? std::min(o.top_k, V) : V;
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  order.resize(k);
  // Softmax at the temperature over the candidates, max-subtracted.
  std::vector<double> p(k);
  const double top = logits[order[0]];
  double total = 0;
  for (int64_t i = 0; i < k; ++i)
    total += p[i] = std::exp((logits[order[i]] - top) / o.temperature);
  // Nucleus: the shortest prefix whose mass reaches top_p (at least one token).
  int64_t keep = k;
  if (o.top_p < 1) {
    double mass = 0;
    for (int64_t i = 0; i < k; ++i) {
      mass += p[i] / total;
      if (mass >= o.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  const double kept_total = std::accumulate(p.begin(), p.begin() + keep, 0.0);
  double r = gen.uniform() * kept_total;
  for (int64_t i = 0; i < keep; ++i) {
    r -= p[i];
    if (r < 0) return order[i];
  }
  return order[keep - 1];  // rounding left r a hair above zero
}

GenerateResult generate(const nn::MambaLM& model, const std::vector<int64_t>& prompt,
                        const GenerateOptions& options, const TokenCallback& on_token) {
  const bool resume = options.start_state != nullptr;
  SSM_CHECK(!prompt.empty() || (resume && options.start_token >= 0),
            "generate: argument 'prompt' expected at least one token, got none");
  SSM_CHECK(options.max_new_tokens > 0, "generate: max_new_tokens expected > 0, got {}",
            options.max_new_tokens);
  SSM_CHECK(resume || options.start_token < 0,
            "generate: start_token {} given without a start_state", options.start_token);
  NoGradGuard no_grad;
  using Clock = std::chrono::steady_clock;
  Generator gen(options.seed);
  GenerateResult result;

  const auto t0 = Clock::now();
  Tensor token = Tensor::empty({1}, DType::I64);
  Tensor logits;  // (1, V)
  nn::MambaLMCache& cache = result.state;
  int64_t fed = 0;
  if (resume) {
    // The earlier text's state, then its pending token and the prompt, one step each.
    for (const auto& layer : options.start_state->layers) cache.layers.push_back(layer.clone());
    std::vector<int64_t> feed;
    if (options.start_token >= 0) feed.push_back(options.start_token);
    feed.insert(feed.end(), prompt.begin(), prompt.end());
    for (int64_t id : feed) {
      token.data<int64_t>()[0] = id;
      logits = model.step(token, cache);
    }
    fed = static_cast<int64_t>(feed.size());
  } else {
    const Tensor ids = Tensor::from_data(prompt, {1, static_cast<int64_t>(prompt.size())});
    std::tie(logits, cache) = model.prefill(ids);
    fed = static_cast<int64_t>(prompt.size());
  }
  const auto t1 = Clock::now();
  const double prompt_s = std::chrono::duration<double>(t1 - t0).count();
  result.prompt_tokens_per_s = fed / std::max(prompt_s, 1e-9);

  // On the GPU the steps replay one captured CUDA graph (made at the first step; it owns the
  // cache meanwhile and hands it back at the end).
  const bool graphed = options.cuda_graph && model.output_weight().device() == Device::CUDA;
  std::unique_ptr<GraphedDecoder> decoder;
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    const int64_t next = sample_token(logits.select(0, 0).to(Device::CPU), options.sampling, gen);
    result.ids.push_back(next);
    if (on_token && !on_token(next)) break;
    if (next == options.eos_id || i + 1 == options.max_new_tokens) break;
    token.data<int64_t>()[0] = next;
    if (graphed && !decoder) decoder = std::make_unique<GraphedDecoder>(model, std::move(cache));
    logits = decoder ? decoder->step(token) : model.step(token, cache);
  }
  if (decoder) cache = decoder->release_cache();
  const double gen_s = std::chrono::duration<double>(Clock::now() - t1).count();
  result.gen_tokens_per_s = result.ids.size() / std::max(gen_s, 1e-9);
  return result;
}

}  // namespace ssm::infer
