#include "ssm/io/hf_mamba.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "ssm/autograd/node.h"
#include "ssm/io/safetensors.h"

namespace ssm::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_text(const fs::path& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  SSM_CHECK(in.good(), "hf_mamba: cannot open {} '{}'", what, path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A required integer field; `alt` is tried when `key` is absent.
int64_t get_int(const json& j, const std::string& source, const char* key,
                const char* alt = nullptr) {
  const char* found = j.contains(key) ? key : (alt && j.contains(alt) ? alt : nullptr);
  SSM_CHECK(found != nullptr, "hf_mamba: {}: missing field '{}'", source, key);
  SSM_CHECK(j[found].is_number_integer() && j[found].get<int64_t>() > 0,
            "hf_mamba: {}: field '{}' expected a positive integer, got {}", source, found,
            j[found].dump());
  return j[found].get<int64_t>();
}

int64_t get_int_or(const json& j, const std::string& source, const char* key, int64_t fallback) {
  return j.contains(key) && !j[key].is_null() ? get_int(j, source, key) : fallback;
}

bool get_bool_or(const json& j, const std::string& source, const char* key, bool fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  SSM_CHECK(j[key].is_boolean(), "hf_mamba: {}: field '{}' expected true or false, got {}", source,
            key, j[key].dump());
  return j[key].get<bool>();
}

void check_architecture(const json& j, const std::string& source) {
  if (j.contains("architectures") && j["architectures"].is_array()) {
    for (const auto& a : j["architectures"]) {
      const std::string name = a.is_string() ? a.get<std::string>() : a.dump();
      SSM_CHECK(name == "MambaForCausalLM" || name == "MambaModel" || name == "MambaLMHeadModel",
                "hf_mamba: {}: unknown architecture '{}' (expected MambaForCausalLM)", source,
                name);
    }
  }
  if (j.contains("model_type")) {
    const std::string type =
        j["model_type"].is_string() ? j["model_type"].get<std::string>() : j["model_type"].dump();
    SSM_CHECK(type == "mamba",
              "hf_mamba: {}: unknown architecture: model_type '{}' (expected 'mamba')", source,
              type);
  }
}

}  // namespace

nn::MambaLMConfig parse_mamba_config(const std::string& json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(fmt::format("hf_mamba: {}: invalid JSON: {}", source, e.what()));
  }
  SSM_CHECK(j.is_object(), "hf_mamba: {}: expected a JSON object", source);
  check_architecture(j, source);
  nn::MambaLMConfig c;
  if (j.contains("hidden_size")) {  // transformers' MambaConfig
    c.mixer.d_model = get_int(j, source, "hidden_size");
    c.n_layer = get_int(j, source, "num_hidden_layers");
    c.vocab_size = get_int(j, source, "vocab_size");
    c.mixer.d_state = get_int_or(j, source, "state_size", 16);
    c.mixer.expand = get_int_or(j, source, "expand", 2);
    c.mixer.d_conv = get_int_or(j, source, "conv_kernel", 4);
    if (j.contains("time_step_rank") &&
        !(j["time_step_rank"].is_string() && j["time_step_rank"].get<std::string>() == "auto"))
      c.mixer.dt_rank = get_int(j, source, "time_step_rank");
    if (j.contains("layer_norm_epsilon")) {
      SSM_CHECK(j["layer_norm_epsilon"].is_number() && j["layer_norm_epsilon"].get<double>() > 0,
                "hf_mamba: {}: field 'layer_norm_epsilon' expected a positive number, got {}",
                source, j["layer_norm_epsilon"].dump());
      c.norm_eps = j["layer_norm_epsilon"].get<double>();
    }
    SSM_CHECK(get_bool_or(j, source, "use_conv_bias", true),
              "hf_mamba: {}: use_conv_bias = false is not supported (expected true)", source);
    SSM_CHECK(!get_bool_or(j, source, "use_bias", false),
              "hf_mamba: {}: use_bias = true is not supported (expected false)", source);
    c.tie_embeddings = get_bool_or(j, source, "tie_word_embeddings", true);
  } else if (j.contains("d_model")) {  // mamba_ssm's MambaConfig
    c.mixer.d_model = get_int(j, source, "d_model");
    c.n_layer = get_int(j, source, "n_layer");
    const int64_t vocab = get_int(j, source, "vocab_size");
    const int64_t multiple = get_int_or(j, source, "pad_vocab_size_multiple", 1);
    c.vocab_size = (vocab + multiple - 1) / multiple * multiple;
    if (j.contains("ssm_cfg") && j["ssm_cfg"].is_object()) {
      const json& s = j["ssm_cfg"];
      if (s.contains("layer")) {
        const std::string layer =
            s["layer"].is_string() ? s["layer"].get<std::string>() : s["layer"].dump();
        SSM_CHECK(layer == "Mamba1",
                  "hf_mamba: {}: unknown architecture: ssm_cfg.layer '{}' (expected 'Mamba1')",
                  source, layer);
      }
      const std::string ssm_source = source + " ssm_cfg";
      c.mixer.d_state = get_int_or(s, ssm_source, "d_state", 16);
      c.mixer.d_conv = get_int_or(s, ssm_source, "d_conv", 4);
      c.mixer.expand = get_int_or(s, ssm_source, "expand", 2);
      if (s.contains("dt_rank") &&
          !(s["dt_rank"].is_string() && s["dt_rank"].get<std::string>() == "auto"))
        c.mixer.dt_rank = get_int(s, ssm_source, "dt_rank");
      SSM_CHECK(get_bool_or(s, ssm_source, "conv_bias", true),
                "hf_mamba: {}: conv_bias = false is not supported (expected true)", ssm_source);
      SSM_CHECK(!get_bool_or(s, ssm_source, "bias", false),
                "hf_mamba: {}: bias = true is not supported (expected false)", ssm_source);
    }
    SSM_CHECK(get_bool_or(j, source, "rms_norm", true),
              "hf_mamba: {}: rms_norm = false (LayerNorm) is not supported (expected true)",
              source);
    c.tie_embeddings = get_bool_or(j, source, "tie_embeddings", true);
  } else {
    throw Error(fmt::format(
        "hf_mamba: {}: unknown architecture: neither 'hidden_size' (MambaForCausalLM) nor "
        "'d_model' (mamba_ssm) is present",
        source));
  }
  SSM_CHECK(c.mixer.d_conv >= 2, "hf_mamba: {}: conv kernel expected >= 2, got {}", source,
            c.mixer.d_conv);
  return c;
}

std::map<std::string, Tensor> read_model_tensors(const std::string& model_dir) {
  const fs::path dir(model_dir);
  const fs::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
  if (fs::exists(single)) return read_safetensors(single.string()).tensors;
  SSM_CHECK(fs::exists(index),
            "hf_mamba: {}: neither model.safetensors nor "
            "model.safetensors.index.json is there",
            model_dir);
  json j;
  try {
    j = json::parse(read_text(index, "index"));
  } catch (const json::exception& e) {
    throw Error(fmt::format("hf_mamba: {}: invalid JSON: {}", index.string(), e.what()));
  }
  SSM_CHECK(j.contains("weight_map") && j["weight_map"].is_object(),
            "hf_mamba: {}: missing object 'weight_map'", index.string());
  std::map<std::string, std::map<std::string, Tensor>> shards;
  std::map<std::string, Tensor> out;
  for (const auto& [name, file] : j["weight_map"].items()) {
    SSM_CHECK(file.is_string(), "hf_mamba: {}: weight_map['{}'] expected a file name, got {}",
              index.string(), name, file.dump());
    const std::string shard = file.get<std::string>();
    SSM_CHECK(shard.find('/') == std::string::npos && shard.find("..") == std::string::npos,
              "hf_mamba: {}: weight_map['{}'] names a file outside the directory: '{}'",
              index.string(), name, shard);
    if (!shards.count(shard)) shards[shard] = read_safetensors((dir / shard).string()).tensors;
    const auto& tensors = shards[shard];
    auto it = tensors.find(name);
    SSM_CHECK(it != tensors.end(),
              "hf_mamba: {}: tensor '{}' is listed in the index but missing from {}", model_dir,
              name, shard);
    out[name] = it->second;
  }
  return out;
}

void load_mamba_weights(nn::MambaLM& model, const std::map<std::string, Tensor>& tensors_in,
                        const std::string& source) {
  std::map<std::string, Tensor> tensors;
  for (const auto& [name, t] : tensors_in) {
    const std::string key =
        name == "backbone.embedding.weight" ? "backbone.embeddings.weight" : name;
    SSM_CHECK(!tensors.count(key), "hf_mamba: {}: tensor '{}' is given twice (as '{}')", source,
              key, name);
    tensors[key] = t;
  }
  // A tied head may still be saved (a copy of the embedding): it is then not used.
  if (model.config.tie_embeddings) tensors.erase("lm_head.weight");
  const auto expected = model.state_dict();
  for (const auto& [name, t] : tensors)
    SSM_CHECK(expected.count(name),
              "hf_mamba: {}: unexpected tensor '{}' {} (not part of a {}-layer Mamba LM)", source,
              name, shape_str(t.shape()), model.config.n_layer);
  NoGradGuard no_grad;
  for (const auto& [name, dst] : expected) {
    auto it = tensors.find(name);
    SSM_CHECK(it != tensors.end(), "hf_mamba: {}: missing tensor '{}' (expected shape {})", source,
              name, shape_str(dst.shape()));
    SSM_CHECK(it->second.shape() == dst.shape(),
              "hf_mamba: {}: tensor '{}' expected shape {}, got {}", source, name,
              shape_str(dst.shape()), shape_str(it->second.shape()));
    SSM_CHECK(is_floating(it->second.dtype()),
              "hf_mamba: {}: tensor '{}' expected a float dtype, got {}", source, name,
              dtype_name(it->second.dtype()));
    Tensor target = dst;
    target.copy_(it->second);
  }
}

std::unique_ptr<nn::MambaLM> load_hf_mamba(const std::string& model_dir, DType dtype) {
  const fs::path config_path = fs::path(model_dir) / "config.json";
  const nn::MambaLMConfig config =
      parse_mamba_config(read_text(config_path, "config"), config_path.string());
  Generator gen(0);  // every parameter is overwritten by the checkpoint
  auto model = std::make_unique<nn::MambaLM>(config, gen, dtype);
  load_mamba_weights(*model, read_model_tensors(model_dir), model_dir);
  model->eval();
  return model;
}

}  // namespace ssm::io
