#pragma once
// The Mamba language model (DESIGN §5): embedding → n blocks of h = h + Mixer(RMSNorm(h))
// → final RMSNorm → lm_head (tied to the embedding unless the config says otherwise).
// The mixer is any SequenceMixer, chosen by `config.arch` ("mamba1", "mamba2", "mamba3") and
// built by make_mixer(). Parameter names follow Hugging Face's MambaForCausalLM /
// Mamba2ForCausalLM ("backbone.layers.0.mixer.A_log", …), so state_dict() / load_state_dict()
// speak a checkpoint's names directly.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ssm/nn/layers.h"
#include "ssm/nn/mamba.h"
#include "ssm/nn/mamba2.h"
#include "ssm/nn/mamba3.h"
#include "ssm/nn/mixer.h"

namespace ssm::nn {

struct MambaLMConfig {
  std::string arch = "mamba1";  // which mixer: "mamba1" | "mamba2" | "mamba3"
  // Per-architecture options; only the chosen arch's are read (d_model lives in them).
  MambaOptions mixer;  // mamba1
  Mamba2Options mamba2;
  Mamba3Options mamba3;
  int64_t n_layer = 2;
  int64_t vocab_size = 256;  // rows of the embedding (already padded)
  double norm_eps = 1e-5;
  bool tie_embeddings = true;  // false: a separate lm_head.weight (V, d_model)

  // d_model of the chosen arch; an unknown arch is an ssm::Error.
  int64_t d_model() const;
};

// Builds the mixer of `config.arch` (an unknown arch is an ssm::Error listing the known ones).
std::shared_ptr<SequenceMixer> make_mixer(const MambaLMConfig& config, Generator& gen, DType dtype);

struct MambaLMCache {
  std::vector<MixerCache> layers;  // one per block
};

class MambaBlock : public Module {
 public:
  MambaBlock(const MambaLMConfig& config, Generator& gen, DType dtype);
  std::shared_ptr<RMSNorm> norm;
  std::shared_ptr<SequenceMixer> mixer;
};

// backbone: embeddings, layers.{i}, norm_f.
class MambaBackbone : public Module {
 public:
  MambaBackbone(const MambaLMConfig& config, Generator& gen, DType dtype);
  std::shared_ptr<Embedding> embeddings;
  std::vector<std::shared_ptr<MambaBlock>> layers;
  std::shared_ptr<RMSNorm> norm_f;
};

class MambaLM : public Module {
 public:
  MambaLM(const MambaLMConfig& config, Generator& gen, DType dtype = DType::F32);

  // ids (B, L) int32/int64 → logits (B, L, V). Differentiable in the parameters.
  Tensor forward(const Tensor& ids) const;
  // Runs the prompt in parallel mode: (logits of the last position (B, V), cache after it).
  std::pair<Tensor, MambaLMCache> prefill(const Tensor& ids) const;
  // An empty cache (as before any token), for decoding from scratch.
  MambaLMCache init_cache(int64_t batch) const;
  // One token per sequence: token (B) → logits (B, V); advances `cache`.
  Tensor step(const Tensor& token, MambaLMCache& cache) const;

  const Tensor& output_weight() const {
    return config.tie_embeddings ? backbone->embeddings->weight : lm_head;
  }
  DType dtype() const { return backbone->embeddings->weight.dtype(); }

  MambaLMConfig config;
  std::shared_ptr<MambaBackbone> backbone;
  Tensor lm_head;  // undefined when tied

 private:
  void check_ids(const Tensor& ids, int64_t rank, const char* op) const;
};

}  // namespace ssm::nn
