#include "bench_lm_model.h"

#include <fmt/format.h>

#include <filesystem>

#include "ssm/io/hf_mamba.h"

namespace ssm::cli {

LoadedModel load_model(const LmBenchOptions& o) {
  LoadedModel m;
  if (!o.model_dir.empty()) {
    m.model = io::load_hf_mamba(o.model_dir, DType::F32);
    m.source = o.model_dir;
    m.name = std::filesystem::path(o.model_dir).lexically_normal().filename().string();
    if (m.name.empty())
      m.name = std::filesystem::path(o.model_dir).parent_path().filename().string();
    m.name += " F32";
    return m;
  }
  SSM_CHECK(o.n_layer > 0 && o.d_model > 0 && o.vocab > 0 && o.d_state > 0 && o.expand > 0,
            "bench lm: model sizes expected > 0");
  nn::MambaLMConfig c;
  c.mixer.d_model = o.d_model;
  c.mixer.d_state = o.d_state;
  c.mixer.expand = o.expand;
  c.n_layer = o.n_layer;
  c.vocab_size = o.vocab;
  Generator gen(0);
  m.model = std::make_unique<nn::MambaLM>(c, gen, DType::F32);
  m.source = "random";
  m.name = fmt::format("mamba {}L d{} F32 (random)", o.n_layer, o.d_model);
  return m;
}

Tensor random_ids(int64_t rows, int64_t n, int64_t vocab, Generator& gen) {
  Tensor ids = Tensor::empty({rows, n}, DType::I64);
  for (int64_t i = 0; i < rows * n; ++i)
    ids.data<int64_t>()[i] = static_cast<int64_t>(gen.below(vocab));
  return ids;
}

Stats tokens_per_s(const Stats& ms, int64_t tokens) {
  Stats t;
  for (double m : ms.samples) t.samples.push_back(static_cast<double>(tokens) / (m / 1e3));
  return t;
}

nlohmann::json model_json(const LoadedModel& lm) {
  const nn::MambaLM& model = *lm.model;
  const auto& c = model.config;
  const int64_t params = model.num_parameters();
  const int64_t weight_bytes = params * static_cast<int64_t>(dtype_size(model.dtype()));
  return {{"name", lm.name},
          {"source", lm.source},
          {"params", params},
          {"weight_bytes", weight_bytes},
          {"dtype", "float32"},
          {"n_layer", c.n_layer},
          {"d_model", c.mixer.d_model},
          {"d_state", c.mixer.d_state},
          {"expand", c.mixer.expand},
          {"vocab_size", c.vocab_size},
          {"tied_embeddings", c.tie_embeddings}};
}

}  // namespace ssm::cli
