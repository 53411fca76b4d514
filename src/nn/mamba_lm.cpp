#include "ssm/nn/mamba_lm.h"

#include <string>

#include "ssm/autograd/node.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/linear.h"

namespace ssm::nn {

namespace {

// Holds the blocks under the names "0", "1", … (the checkpoint's "layers.{i}").
class BlockList : public Module {
 public:
  void add(const std::shared_ptr<MambaBlock>& block) {
    register_module(std::to_string(count_++), block);
  }

 private:
  int64_t count_ = 0;
};

}  // namespace

MambaBlock::MambaBlock(const MambaLMConfig& c, Generator& gen, DType dtype) {
  norm = register_module("norm", std::make_shared<RMSNorm>(c.d_model(), c.norm_eps, dtype));
  mixer = register_module("mixer", make_mixer(c, gen, dtype));
}

MambaBackbone::MambaBackbone(const MambaLMConfig& c, Generator& gen, DType dtype) {
  embeddings = register_module("embeddings",
                               std::make_shared<Embedding>(c.vocab_size, c.d_model(), gen, dtype));
  // Mamba initialises the embedding with std 0.02 (it is also the tied output projection).
  embeddings->weight.copy_(mul_scalar(embeddings->weight, 0.02));
  auto list = register_module("layers", std::make_shared<BlockList>());
  for (int64_t i = 0; i < c.n_layer; ++i) {
    layers.push_back(std::make_shared<MambaBlock>(c, gen, dtype));
    list->add(layers.back());
  }
  norm_f = register_module("norm_f", std::make_shared<RMSNorm>(c.d_model(), c.norm_eps, dtype));
}

MambaLM::MambaLM(const MambaLMConfig& c, Generator& gen, DType dtype) : config(c) {
  SSM_CHECK(c.n_layer > 0 && c.vocab_size > 0,
            "MambaLM: n_layer and vocab_size must be positive, got n_layer={} vocab_size={}",
            c.n_layer, c.vocab_size);
  backbone = register_module("backbone", std::make_shared<MambaBackbone>(c, gen, dtype));
  if (!c.tie_embeddings)
    lm_head = register_parameter(
        "lm_head.weight",
        mul_scalar(randn({c.vocab_size, c.d_model()}, dtype, &gen), 0.02).detach());
}

void MambaLM::check_ids(const Tensor& ids, int64_t rank, const char* op) const {
  SSM_CHECK(ids.defined() && ids.dim() == rank && ids.numel() > 0,
            "{}: argument '{}' expected shape {} with no empty dims, got {}", op,
            rank == 2 ? "ids" : "token", rank == 2 ? "(B, L)" : "(B)",
            ids.defined() ? shape_str(ids.shape()) : "undefined");
  SSM_CHECK(ids.dtype() == DType::I64 || ids.dtype() == DType::I32,
            "{}: argument '{}' expected int32 or int64 ids, got {}", op,
            rank == 2 ? "ids" : "token", dtype_name(ids.dtype()));
}

Tensor MambaLM::forward(const Tensor& ids) const {
  check_ids(ids, 2, "MambaLM.forward");
  Tensor h = backbone->embeddings->forward(ids);  // (B, L, d_model)
  for (const auto& block : backbone->layers) h = h + block->mixer->forward(block->norm->forward(h));
  return linear(backbone->norm_f->forward(h), output_weight());
}

std::pair<Tensor, MambaLMCache> MambaLM::prefill(const Tensor& ids) const {
  NoGradGuard no_grad;
  check_ids(ids, 2, "MambaLM.prefill");
  MambaLMCache cache;
  cache.layers.resize(backbone->layers.size());
  Tensor h = backbone->embeddings->forward(ids);
  for (size_t i = 0; i < backbone->layers.size(); ++i) {
    const auto& block = backbone->layers[i];
    h = h + block->mixer->prefill(block->norm->forward(h), cache.layers[i]);
  }
  const Tensor last = h.select(1, h.size(1) - 1);  // (B, d_model)
  return {linear(backbone->norm_f->forward(last), output_weight()), std::move(cache)};
}

MambaLMCache MambaLM::init_cache(int64_t batch) const {
  MambaLMCache cache;
  for (const auto& block : backbone->layers)
    cache.layers.push_back(block->mixer->init_cache(batch));
  return cache;
}

Tensor MambaLM::step(const Tensor& token, MambaLMCache& cache) const {
  NoGradGuard no_grad;
  check_ids(token, 1, "MambaLM.step");
  SSM_CHECK(cache.layers.size() == backbone->layers.size(),
            "MambaLM.step: argument 'cache' expected {} layers, got {}", backbone->layers.size(),
            cache.layers.size());
  Tensor h = backbone->embeddings->forward(token);  // (B, d_model)
  for (size_t i = 0; i < backbone->layers.size(); ++i) {
    const auto& block = backbone->layers[i];
    h = h + block->mixer->step(block->norm->forward(h), cache.layers[i]);
  }
  return linear(backbone->norm_f->forward(h), output_weight());
}

}  // namespace ssm::nn
