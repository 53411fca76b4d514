#pragma once
// Saving a language model's decode state (its MixerCache per layer) to a file and restoring
// it, so that generation can stop and later continue exactly where it was — for any mixer
// architecture, since the cache is a set of named tensors.
//
// The file is safetensors (written atomically): tensor "layers.{i}.{name}" for each layer i and
// cache entry name, metadata "format" = "ssm-decode-state", "n_layer", and whatever the caller
// adds (e.g. "arch", "last_token"). Loading validates it against a model: the layer count, the
// arch when recorded, and every tensor's presence and shape (a mismatch names the tensor and
// both shapes); tensors are converted to the model's dtype.
#include <map>
#include <string>

#include "ssm/nn/mamba_lm.h"

namespace ssm::io {

void save_cache(const std::string& path, const nn::MambaLMCache& cache,
                const std::map<std::string, std::string>& metadata = {});

// The state in `path`, checked against `model` (its batch is the file's). `metadata`, when
// given, receives the file's metadata.
nn::MambaLMCache load_cache(const std::string& path, const nn::MambaLM& model,
                            std::map<std::string, std::string>* metadata = nullptr);

}  // namespace ssm::io
