#pragma once
// Loading a Mamba-1 or Mamba-2 language model from a Hugging Face model directory:
//   config.json   transformers' MambaForCausalLM (hidden_size, num_hidden_layers, state_size,
//                 expand, conv_kernel, time_step_rank ("auto" = ceil(hidden_size / 16)),
//                 vocab_size, layer_norm_epsilon, use_conv_bias, use_bias, tie_word_embeddings)
//                 or Mamba2ForCausalLM (the same plus head_dim, num_heads, n_groups, chunk_size,
//                 time_step_min/max/floor/limit, rms_norm; num_heads · head_dim must equal
//                 expand · hidden_size), or the original mamba_ssm one (d_model, n_layer,
//                 vocab_size, ssm_cfg with layer "Mamba1" / "Mamba2", pad_vocab_size_multiple:
//                 the vocabulary is padded up to the multiple). The architecture comes from
//                 "architectures", "model_type" or "ssm_cfg.layer" (they must agree; none:
//                 Mamba-1). Python's bare Infinity / NaN literals are accepted;
//   weights       model.safetensors, or shards listed in model.safetensors.index.json.
// Tensor names are MambaForCausalLM's / Mamba2ForCausalLM's; `backbone.embedding.weight`
// (mamba_ssm) is accepted for `backbone.embeddings.weight`. F16 / BF16 weights are widened.
// Every missing, unexpected or mis-shaped tensor is an ssm::Error naming it (and both shapes).
#include <map>
#include <memory>
#include <string>

#include "ssm/nn/mamba_lm.h"

namespace ssm::io {

// Parses a config.json (the file's path names it in errors). An architecture other than
// Mamba-1 / Mamba-2, or an option they do not have here (biases in the projections, MLP or
// attention layers, LayerNorm, …), is an error naming the field.
nn::MambaLMConfig parse_mamba_config(const std::string& json_text, const std::string& source);

// All tensors of a model directory by name (single file or sharded), as stored.
std::map<std::string, Tensor> read_model_tensors(const std::string& model_dir);

// Copies `tensors` into `model` (names normalised as above); see the checks above.
void load_mamba_weights(nn::MambaLM& model, const std::map<std::string, Tensor>& tensors,
                        const std::string& source);

// config.json + weights → a ready model of `dtype` (F32 or F64).
std::unique_ptr<nn::MambaLM> load_hf_mamba(const std::string& model_dir, DType dtype = DType::F32);

}  // namespace ssm::io
