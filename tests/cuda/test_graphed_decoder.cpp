// Decoding through one CUDA graph (infer::GraphedDecoder, cuda::Graph) against op-by-op steps:
// the same logits and state after every token, for Mamba-1 and Mamba-2, with the allocator's
// cache churned between replays (a block the graph writes must never be handed out again);
// greedy generation with and without the graph; bad ids and capture errors as ssm::Error.
#include <functional>
#include <string>
#include <vector>

#include "ssm/core/cuda_graph.h"
#include "ssm/infer/generate.h"
#include "ssm/infer/graphed_decoder.h"
#include "ssm/nn/mamba_lm.h"
#include "support/cuda_testing.h"
#include "support/perturb.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

std::unique_ptr<nn::MambaLM> tiny_gpu_model(const std::string& arch, DType dtype) {
  nn::MambaLMConfig c;
  c.arch = arch;
  c.n_layer = 3;
  c.vocab_size = 41;
  c.mixer.d_model = 24;
  c.mixer.d_state = 5;
  c.mixer.dt_rank = 2;
  c.mamba2.d_model = 24;
  c.mamba2.d_state = 6;
  c.mamba2.head_dim = 16;
  Generator g(7);
  auto m = std::make_unique<nn::MambaLM>(c, g, dtype);
  ssm::testing::perturb_parameters(*m, 8, 0.2);
  m->to(Device::CUDA);
  return m;
}

void expect_error_contains(const std::function<void()>& f, const std::string& part) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    return;
  }
  ADD_FAILURE() << "no error; expected one containing: " << part;
}

Tensor ids_of(std::vector<int64_t> ids) {
  const auto n = static_cast<int64_t>(ids.size());
  return Tensor::from_data(ids, {n});
}

class Graphed : public ::testing::TestWithParam<const char*> {};

TEST_P(Graphed, EveryStepMatchesOpByOpStepsWhileTheCacheIsChurned) {
  SSM_SKIP_WITHOUT_CUDA();
  for (DType dtype : {DType::F64, DType::F32}) {
    ssm::testing::PoisonDeviceMemory poison;
    auto model = tiny_gpu_model(GetParam(), dtype);
    // Batch 2, from a prefilled state, so the graph starts from a non-zero cache.
    const Tensor prompt =
        Tensor::from_data(std::vector<int64_t>{3, 9, 27, 1, 40, 5, 6, 11, 2, 8}, {2, 5});
    auto [first_logits, eager_cache] = model->prefill(prompt);
    nn::MambaLMCache graph_cache;
    for (const auto& layer : eager_cache.layers) graph_cache.layers.push_back(layer.clone());
    infer::GraphedDecoder decoder(*model, std::move(graph_cache));
    EXPECT_EQ(decoder.batch(), 2);
    Generator g(12);
    double worst = 0;
    for (int step = 0; step < 9; ++step) {
      const Tensor token =
          ids_of({static_cast<int64_t>(g.below(41)), static_cast<int64_t>(g.below(41))});
      const Tensor eager = model->step(token, eager_cache).to(Device::CPU);
      const Tensor graphed = decoder.step(token).to(Device::CPU);
      worst = std::max(worst, rel_error(graphed, eager));
      // Churn: allocations of the step's own sizes, written, between replays.
      nn::MambaLMCache other = model->init_cache(2);
      (void)model->step(token, other);
    }
    const nn::MambaLMCache final_state = decoder.release_cache();
    for (size_t i = 0; i < eager_cache.layers.size(); ++i)
      for (const auto& [name, t] : eager_cache.layers[i].tensors)
        worst = std::max(worst, rel_error(final_state.layers[i].tensors.at(name).to(Device::CPU),
                                          t.to(Device::CPU)));
    // The same kernels on the same inputs: equal up to at most the GEMMs' algorithm choice.
    const double bound = dtype == DType::F64 ? 1e-13 : 1e-6;
    std::printf("graphed decode %s %s: max rel err %.3g (bound %.0e)\n", GetParam(),
                dtype_name(dtype), worst, bound);
    EXPECT_LE(worst, bound);
    EXPECT_THROW(decoder.step(ids_of({1, 2})), Error);  // released
  }
}

TEST_P(Graphed, GreedyGenerationIsTheSameWithAndWithoutTheGraph) {
  SSM_SKIP_WITHOUT_CUDA();
  auto model = tiny_gpu_model(GetParam(), DType::F64);
  infer::GenerateOptions o;
  o.max_new_tokens = 20;
  o.sampling.temperature = 0;
  const std::vector<int64_t> prompt{4, 17, 33, 2};
  o.cuda_graph = true;
  const infer::GenerateResult a = infer::generate(*model, prompt, o);
  o.cuda_graph = false;
  const infer::GenerateResult b = infer::generate(*model, prompt, o);
  EXPECT_EQ(a.ids, b.ids);
  ASSERT_EQ(a.ids.size(), 20u);
  for (size_t i = 0; i < b.state.layers.size(); ++i)
    for (const auto& [name, t] : b.state.layers[i].tensors)
      EXPECT_LE(rel_error(a.state.layers[i].tensors.at(name).to(Device::CPU), t.to(Device::CPU)),
                1e-13)
          << name;
}

INSTANTIATE_TEST_SUITE_P(Archs, Graphed, ::testing::Values("mamba1", "mamba2"));

TEST(GraphedDecoder, RejectsBadIdsShapesAndCpuCaches) {
  SSM_SKIP_WITHOUT_CUDA();
  auto model = tiny_gpu_model("mamba1", DType::F32);
  infer::GraphedDecoder decoder(*model, model->init_cache(1));
  expect_error_contains([&] { decoder.step(ids_of({41})); }, "has id 41 at 0, expected in [0, 41)");
  expect_error_contains([&] { decoder.step(ids_of({-1})); }, "has id -1");
  expect_error_contains(
      [&] {
        decoder.step(ids_of({1, 2}));
      },
      "argument 'token' expected shape (1)");
  EXPECT_NO_THROW(decoder.step(ids_of({40})));
  nn::MambaLMCache cpu_cache = model->init_cache(1);
  for (auto& layer : cpu_cache.layers)
    for (auto& [name, t] : layer.tensors) t = t.to(Device::CPU);
  expect_error_contains([&] { infer::GraphedDecoder bad(*model, std::move(cpu_cache)); },
                        "expected on cuda");
}

TEST(CudaGraph, CaptureOfAHostCopyFailsCleanlyAndTheStreamStillWorks) {
  SSM_SKIP_WITHOUT_CUDA();
  const Tensor x = Tensor::ones({16}, DType::F32).to(Device::CUDA);
  cuda::Graph graph;
  EXPECT_THROW(graph.capture([&] { (void)x.to(Device::CPU); }), Error);
  EXPECT_FALSE(graph.captured());
  EXPECT_THROW(graph.replay(), Error);
  // The stream is usable afterwards.
  const Tensor y = (x + x).to(Device::CPU);
  EXPECT_EQ(y.data<float>()[15], 2.0f);
}

TEST(CudaGraph, ReplaysRepeatTheCapturedWorkInPlace) {
  SSM_SKIP_WITHOUT_CUDA();
  Tensor acc = Tensor::ones({1000}, DType::F64).to(Device::CUDA);
  const Tensor step = Tensor::full({1000}, 0.5, DType::F64).to(Device::CUDA);
  cuda::Graph graph;
  graph.capture([&] { acc.copy_(acc + step); });
  EXPECT_EQ(acc.to(Device::CPU).data<double>()[999], 1.0);  // capture records, does not run
  for (int i = 0; i < 6; ++i) graph.replay();
  EXPECT_EQ(acc.to(Device::CPU).data<double>()[0], 4.0);
}

}  // namespace
