#pragma once
// `ssm bench lm`: the model under test and the helpers its CPU and GPU suites share.
#include <memory>
#include <string>

#include "bench_common.h"
#include "bench_suites.h"
#include "ssm/core/rng.h"
#include "ssm/nn/mamba_lm.h"

namespace ssm::cli {

struct LoadedModel {
  std::unique_ptr<nn::MambaLM> model;
  std::string name, source;
};

// The Hugging Face checkpoint of --model, or random weights of the options' shape (float32).
LoadedModel load_model(const LmBenchOptions& o);
// (rows, n) int64 ids, uniform in [0, vocab).
Tensor random_ids(int64_t rows, int64_t n, int64_t vocab, Generator& gen);
// Tokens/s of each timed run, from its milliseconds.
Stats tokens_per_s(const Stats& ms, int64_t tokens);
// The `model` object of the suite's JSON.
nlohmann::json model_json(const LoadedModel& lm);

// The GPU suite (o.device == "cuda"): pp, tg through op-by-op steps and through the CUDA graph,
// and training tokens/s; decode bandwidth against the device's copy bandwidth.
nlohmann::json run_lm_bench_cuda(const LmBenchOptions& o);

}  // namespace ssm::cli
