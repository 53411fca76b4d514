#include "ssm/io/checkpoint.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "ssm/io/safetensors.h"

namespace ssm::io {

namespace {
constexpr const char* kModelPrefix = "model/";
constexpr const char* kOptimPrefix = "optim/";
constexpr const char* kFormatKey = "ssm.format";
constexpr const char* kFormat = "checkpoint-v1";
constexpr const char* kMetadataKey = "ssm.metadata";

bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}
}  // namespace

std::string checkpoint_path(const std::string& dir) {
  return (std::filesystem::path(dir) / "checkpoint.safetensors").string();
}

void save_checkpoint(const std::string& dir, const std::map<std::string, Tensor>& model_state,
                     const std::map<std::string, Tensor>& optimizer_state,
                     const std::string& metadata_json) {
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(metadata_json);
  } catch (const nlohmann::json::exception& e) {
    SSM_FAIL("save_checkpoint: argument 'metadata_json' is not valid JSON: {}", e.what());
  }
  SSM_CHECK(meta.is_object(),
            "save_checkpoint: argument 'metadata_json' expected a JSON object, got {}",
            meta.type_name());
  std::map<std::string, Tensor> all;
  for (const auto& [name, t] : model_state) all[kModelPrefix + name] = t;
  for (const auto& [name, t] : optimizer_state) all[kOptimPrefix + name] = t;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  SSM_CHECK(!ec, "save_checkpoint: cannot create directory '{}': {}", dir, ec.message());
  write_safetensors(checkpoint_path(dir), all,
                    {{kFormatKey, kFormat}, {kMetadataKey, meta.dump()}});
}

Checkpoint load_checkpoint(const std::string& dir) {
  const std::string path = checkpoint_path(dir);
  SSM_CHECK(std::filesystem::exists(path), "load_checkpoint: no checkpoint at '{}'", path);
  SafetensorsFile file = read_safetensors(path);
  auto format = file.metadata.find(kFormatKey);
  SSM_CHECK(format != file.metadata.end() && format->second == kFormat,
            "load_checkpoint: '{}' is not an ssm checkpoint (__metadata__ '{}' expected '{}', got "
            "'{}')",
            path, kFormatKey, kFormat, format == file.metadata.end() ? "" : format->second);
  Checkpoint out;
  auto meta = file.metadata.find(kMetadataKey);
  if (meta != file.metadata.end()) out.metadata_json = meta->second;
  for (auto& [name, t] : file.tensors) {
    if (starts_with(name, kModelPrefix))
      out.model_state[name.substr(std::strlen(kModelPrefix))] = t;
    else if (starts_with(name, kOptimPrefix))
      out.optimizer_state[name.substr(std::strlen(kOptimPrefix))] = t;
    else
      SSM_FAIL("load_checkpoint: '{}': tensor '{}' is neither model/ nor optim/ state", path, name);
  }
  return out;
}

}  // namespace ssm::io
