// Perplexity: exp of the mean NLL of every token after the first of each window, checked
// against the model's own forward window by window with a log-softmax written out here.
#include <cmath>

#include "ssm/infer/perplexity.h"
#include "support/testing.h"

using namespace ssm;

namespace {

std::unique_ptr<nn::MambaLM> tiny_model(DType dtype, int64_t vocab = 11) {
  nn::MambaLMConfig c;
  c.mixer.d_model = 8;
  c.mixer.d_state = 4;
  c.n_layer = 2;
  c.vocab_size = vocab;
  Generator gen(21);
  auto m = std::make_unique<nn::MambaLM>(c, gen, dtype);
  // Larger embeddings than the 0.02 init, so the predictions are far from uniform.
  m->backbone->embeddings->weight.copy_(randn({vocab, 8}, dtype, &gen));
  return m;
}

std::vector<int64_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<int64_t>(g.below(static_cast<uint64_t>(vocab)));
  return t;
}

// −log p(tokens[i] | window prefix) summed over each window's positions after the first,
// with each window run alone through forward().
double reference_nll_sum(const nn::MambaLM& m, const std::vector<int64_t>& t, int64_t ctx,
                         int64_t* scored) {
  double total = 0;
  *scored = 0;
  for (size_t start = 0; start < t.size(); start += static_cast<size_t>(ctx)) {
    const size_t n = std::min(t.size() - start, static_cast<size_t>(ctx));
    if (n < 2) break;
    std::vector<int64_t> w(t.begin() + static_cast<long>(start),
                           t.begin() + static_cast<long>(start + n));
    const Tensor logits = m.forward(Tensor::from_data(w, {1, static_cast<int64_t>(n)}));
    for (size_t l = 0; l + 1 < n; ++l) {
      double z = 0;
      for (int64_t v = 0; v < m.config.vocab_size; ++v)
        z += std::exp(logits.at({0, static_cast<int64_t>(l), v}));
      total += std::log(z) - logits.at({0, static_cast<int64_t>(l), w[l + 1]});
      ++*scored;
    }
  }
  return total;
}

}  // namespace

TEST(Perplexity, EqualsExpOfMeanNllOfTheModelsForward) {
  const auto m = tiny_model(DType::F64);
  // 16 + 16 + 16 + a tail of 2: the tail counts one token.
  const std::vector<int64_t> t = random_tokens(50, 11, 3);
  int64_t scored = 0;
  const double nll = reference_nll_sum(*m, t, 16, &scored);
  EXPECT_EQ(scored, 3 * 15 + 1);
  for (const int64_t batch : {1, 2, 8}) {
    const infer::PerplexityResult r = infer::perplexity(*m, t, 16, batch);
    EXPECT_EQ(r.tokens, scored);
    EXPECT_EQ(r.windows, 4);
    EXPECT_NEAR(r.mean_nll, nll / scored, 1e-12 * nll / scored) << "batch " << batch;
    EXPECT_NEAR(r.perplexity, std::exp(nll / scored), 1e-11 * r.perplexity);
  }
  // The predictions are informative enough to tell the order of the tokens apart: reversing
  // the text changes the perplexity.
  std::vector<int64_t> rev(t.rbegin(), t.rend());
  EXPECT_GT(std::abs(infer::perplexity(*m, rev, 16).mean_nll - nll / scored), 1e-6);
}

TEST(Perplexity, SingleTokenTailIsNotScoredAndWholeTextIsOneWindow) {
  const auto m = tiny_model(DType::F64);
  const std::vector<int64_t> t = random_tokens(49, 11, 4);  // 16 · 3 + 1
  int64_t scored = 0;
  const double nll = reference_nll_sum(*m, t, 16, &scored);
  const infer::PerplexityResult r = infer::perplexity(*m, t, 16);
  EXPECT_EQ(r.tokens, 45);
  EXPECT_EQ(r.windows, 3);
  EXPECT_NEAR(r.mean_nll, nll / scored, 1e-12 * r.mean_nll);
  const infer::PerplexityResult whole = infer::perplexity(*m, t, 49);
  EXPECT_EQ(whole.tokens, 48);
  EXPECT_EQ(whole.windows, 1);
}

TEST(Perplexity, Float32ModelAgreesWithItsOwnForward) {
  const auto m = tiny_model(DType::F32);
  const std::vector<int64_t> t = random_tokens(70, 11, 5);
  int64_t scored = 0;
  const double nll = reference_nll_sum(*m, t, 32, &scored);
  // Batched windows go through other GEMM shapes than single ones: float32 rounding.
  EXPECT_NEAR(infer::perplexity(*m, t, 32).mean_nll, nll / scored, 1e-5 * nll / scored);
}

TEST(Perplexity, BadInput) {
  const auto m = tiny_model(DType::F32);
  const std::vector<int64_t> t = random_tokens(20, 11, 6);
  EXPECT_SSM_ERROR(infer::perplexity(*m, t, 1), "context", "≥ 2", "1");
  EXPECT_SSM_ERROR(infer::perplexity(*m, t, 21), "21", "20 tokens");
  std::vector<int64_t> bad = t;
  bad[7] = 11;
  EXPECT_SSM_ERROR(infer::perplexity(*m, bad, 8), "token 11", "position 7", "vocabulary of 11");
}
