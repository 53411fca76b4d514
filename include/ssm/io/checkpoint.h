#pragma once
// Training checkpoints: the model's state, the optimizer's state and free-form metadata
// (a JSON object: step, epoch, config, ...) in one file, dir/checkpoint.safetensors, written
// atomically so a crash mid-save leaves the previous checkpoint intact.
// Inside the file, model tensors are named "model/<name>", optimizer tensors "optim/<name>",
// and the metadata JSON text is the __metadata__ entry "ssm.metadata".
#include <map>
#include <string>

#include "ssm/core/tensor.h"

namespace ssm::io {

struct Checkpoint {
  std::map<std::string, Tensor> model_state;
  std::map<std::string, Tensor> optimizer_state;
  std::string metadata_json = "{}";
};

std::string checkpoint_path(const std::string& dir);

// Creates `dir` when missing. metadata_json must be a JSON object.
void save_checkpoint(const std::string& dir, const std::map<std::string, Tensor>& model_state,
                     const std::map<std::string, Tensor>& optimizer_state,
                     const std::string& metadata_json = "{}");
Checkpoint load_checkpoint(const std::string& dir);

}  // namespace ssm::io
