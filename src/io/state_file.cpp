#include "ssm/io/state_file.h"

#include <set>

#include "ssm/io/safetensors.h"

namespace ssm::io {

namespace {

constexpr const char* kFormat = "ssm-decode-state";

std::string entry_name(size_t layer, const std::string& name) {
  return "layers." + std::to_string(layer) + "." + name;
}

}  // namespace

void save_cache(const std::string& path, const nn::MambaLMCache& cache,
                const std::map<std::string, std::string>& metadata) {
  SSM_CHECK(!cache.layers.empty(), "save_cache: {}: the cache has no layers", path);
  std::map<std::string, Tensor> tensors;
  for (size_t i = 0; i < cache.layers.size(); ++i)
    for (const auto& [name, t] : cache.layers[i].tensors) {
      SSM_CHECK(t.defined(), "save_cache: {}: cache entry '{}' is undefined", path,
                entry_name(i, name));
      tensors[entry_name(i, name)] = t.detach();
    }
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = kFormat;
  meta["n_layer"] = std::to_string(cache.layers.size());
  write_safetensors(path, tensors, meta);
}

nn::MambaLMCache load_cache(const std::string& path, const nn::MambaLM& model,
                            std::map<std::string, std::string>* metadata) {
  SafetensorsFile file = read_safetensors(path);
  const auto& meta = file.metadata;
  const auto format = meta.find("format");
  SSM_CHECK(format != meta.end() && format->second == kFormat,
            "load_cache: {}: not a decode state file (metadata 'format' expected '{}', got '{}')",
            path, kFormat, format == meta.end() ? "" : format->second);
  const size_t n_layer = model.backbone->layers.size();
  const auto layers = meta.find("n_layer");
  SSM_CHECK(layers != meta.end() && layers->second == std::to_string(n_layer),
            "load_cache: {}: the state has {} layers, the model has {}", path,
            layers == meta.end() ? "no count of" : layers->second, n_layer);
  const auto arch = meta.find("arch");
  SSM_CHECK(arch == meta.end() || arch->second == model.config.arch,
            "load_cache: {}: the state is of a {} model, the model is {}", path, arch->second,
            model.config.arch);
  SSM_CHECK(!file.tensors.empty(), "load_cache: {}: the state holds no tensors", path);

  // The batch is the file's; every expected entry has it as its first dim.
  const Tensor& any = file.tensors.begin()->second;
  SSM_CHECK(any.dim() >= 1 && any.size(0) > 0,
            "load_cache: {}: tensor '{}' expected a batch dim first, got shape {}", path,
            file.tensors.begin()->first, shape_str(any.shape()));
  nn::MambaLMCache cache = model.init_cache(any.size(0));
  std::set<std::string> used;
  for (size_t i = 0; i < cache.layers.size(); ++i)
    for (auto& [name, dst] : cache.layers[i].tensors) {
      const std::string key = entry_name(i, name);
      auto it = file.tensors.find(key);
      SSM_CHECK(it != file.tensors.end(), "load_cache: {}: missing tensor '{}' (expected shape {})",
                path, key, shape_str(dst.shape()));
      SSM_CHECK(it->second.shape() == dst.shape(),
                "load_cache: {}: tensor '{}' expected shape {}, got {}", path, key,
                shape_str(dst.shape()), shape_str(it->second.shape()));
      SSM_CHECK(is_floating(it->second.dtype()),
                "load_cache: {}: tensor '{}' expected a float dtype, got {}", path, key,
                dtype_name(it->second.dtype()));
      dst.copy_(it->second);
      used.insert(key);
    }
  for (const auto& [name, t] : file.tensors)
    SSM_CHECK(used.count(name),
              "load_cache: {}: unexpected tensor '{}' {} (not part of a {} state)", path, name,
              shape_str(t.shape()), model.config.arch);
  if (metadata) *metadata = meta;
  return cache;
}

}  // namespace ssm::io
