#include "ssm/io/hf_mamba.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

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

// config.json files written by Python's json module spell non-finite floats as the bare
// literals Infinity, -Infinity and NaN (e.g. Mamba-2's "time_step_limit": [0.0, Infinity]),
// which strict JSON lacks: outside strings they become the strings "Infinity", … that
// get_double() reads.
std::string quote_non_finite_literals(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < text.size())
        out.push_back(text[++i]);
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (const char* word : {"-Infinity", "Infinity", "NaN"}) {
      const std::string w(word);
      if (text.compare(i, w.size(), w) == 0) {
        out += '"' + w + '"';
        i += w.size() - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out.push_back(c);
  }
  return out;
}

// A float field: a number, one of the strings "Infinity" / "-Infinity" / "inf" / "-inf", or
// transformers 5's {"__float__": "Infinity"}.
double get_double(const json& v, const std::string& source, const std::string& key) {
  if (v.is_number()) return v.get<double>();
  const json* s = &v;
  if (v.is_object() && v.contains("__float__")) s = &v["__float__"];
  if (s->is_string()) {
    const std::string t = s->get<std::string>();
    if (t == "Infinity" || t == "inf") return std::numeric_limits<double>::infinity();
    if (t == "-Infinity" || t == "-inf") return -std::numeric_limits<double>::infinity();
  }
  SSM_FAIL("hf_mamba: {}: field '{}' expected a number, got {}", source, key, v.dump());
}

double get_positive_double_or(const json& j, const std::string& source, const char* key,
                              double fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const double v = get_double(j[key], source, key);
  SSM_CHECK(v > 0 && std::isfinite(v),
            "hf_mamba: {}: field '{}' expected a positive number, got {}", source, key,
            j[key].dump());
  return v;
}

// A [low, high] pair of floats (time_step_limit, dt_limit, A_init_range).
std::pair<double, double> get_range_or(const json& j, const std::string& source, const char* key,
                                       std::pair<double, double> fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  SSM_CHECK(j[key].is_array() && j[key].size() == 2,
            "hf_mamba: {}: field '{}' expected [low, high], got {}", source, key, j[key].dump());
  return {get_double(j[key][0], source, key), get_double(j[key][1], source, key)};
}

std::string get_string_or(const json& j, const char* key, const std::string& fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

// Which mixer the file describes, from every field that names one ("architectures",
// "model_type", mamba_ssm's "ssm_cfg.layer"); they must agree. None: Mamba-1.
std::string detect_arch(const json& j, const std::string& source) {
  std::string arch, said_by;
  // `field` names the field and its value, e.g. "model_type 'mamba'".
  const auto claim = [&](const std::string& a, const std::string& field) {
    SSM_CHECK(arch.empty() || arch == a, "hf_mamba: {}: {} ({}) contradicts {} ({})", source,
              said_by, arch, field, a);
    arch = a;
    said_by = field;
  };
  if (j.contains("architectures") && j["architectures"].is_array()) {
    for (const auto& a : j["architectures"]) {
      const std::string name = a.is_string() ? a.get<std::string>() : a.dump();
      if (name == "MambaForCausalLM" || name == "MambaModel") {
        claim("mamba1", "architectures '" + name + "'");
      } else if (name == "Mamba2ForCausalLM" || name == "Mamba2Model") {
        claim("mamba2", "architectures '" + name + "'");
      } else {
        SSM_CHECK(name == "MambaLMHeadModel",  // mamba_ssm: the layer is in ssm_cfg
                  "hf_mamba: {}: unknown architecture '{}' (expected MambaForCausalLM or "
                  "Mamba2ForCausalLM)",
                  source, name);
      }
    }
  }
  if (j.contains("model_type")) {
    const std::string type = get_string_or(j, "model_type", "");
    SSM_CHECK(type == "mamba" || type == "mamba2",
              "hf_mamba: {}: unknown architecture: model_type '{}' (expected 'mamba' or "
              "'mamba2')",
              source, type);
    claim(type == "mamba" ? "mamba1" : "mamba2", "model_type '" + type + "'");
  }
  if (j.contains("ssm_cfg") && j["ssm_cfg"].is_object() && j["ssm_cfg"].contains("layer")) {
    const std::string layer = get_string_or(j["ssm_cfg"], "layer", "");
    SSM_CHECK(layer == "Mamba1" || layer == "Mamba2",
              "hf_mamba: {}: unknown architecture: ssm_cfg.layer '{}' (expected 'Mamba1' or "
              "'Mamba2')",
              source, layer);
    claim(layer == "Mamba1" ? "mamba1" : "mamba2", "ssm_cfg.layer '" + layer + "'");
  }
  return arch.empty() ? "mamba1" : arch;
}

void parse_hf_mamba1(const json& j, const std::string& source, nn::MambaLMConfig& c) {
  c.mixer.d_model = get_int(j, source, "hidden_size");
  c.mixer.d_state = get_int_or(j, source, "state_size", 16);
  c.mixer.expand = get_int_or(j, source, "expand", 2);
  c.mixer.d_conv = get_int_or(j, source, "conv_kernel", 4);
  if (j.contains("time_step_rank") &&
      !(j["time_step_rank"].is_string() && j["time_step_rank"].get<std::string>() == "auto"))
    c.mixer.dt_rank = get_int(j, source, "time_step_rank");
  c.tie_embeddings = get_bool_or(j, source, "tie_word_embeddings", true);
}

// transformers' Mamba2Config; defaults are its own (n_groups 8, untied head).
void parse_hf_mamba2(const json& j, const std::string& source, nn::MambaLMConfig& c) {
  nn::Mamba2Options& m = c.mamba2;
  m.d_model = get_int(j, source, "hidden_size");
  m.d_state = get_int_or(j, source, "state_size", 128);
  m.expand = get_int_or(j, source, "expand", 2);
  m.head_dim = get_int_or(j, source, "head_dim", 64);
  m.n_groups = get_int_or(j, source, "n_groups", 8);
  m.d_conv = get_int_or(j, source, "conv_kernel", 4);
  m.chunk_size = get_int_or(j, source, "chunk_size", 256);
  const int64_t heads = get_int_or(j, source, "num_heads", m.d_inner() / m.head_dim);
  SSM_CHECK(heads * m.head_dim == m.d_inner(),
            "hf_mamba: {}: num_heads · head_dim = {} · {} = {} must equal expand · hidden_size = "
            "{} · {} = {}",
            source, heads, m.head_dim, heads * m.head_dim, m.expand, m.d_model, m.d_inner());
  m.dt_min = get_positive_double_or(j, source, "time_step_min", m.dt_min);
  m.dt_max = get_positive_double_or(j, source, "time_step_max", m.dt_max);
  m.dt_init_floor = get_positive_double_or(j, source, "time_step_floor", m.dt_init_floor);
  std::tie(m.dt_limit_min, m.dt_limit_max) =
      get_range_or(j, source, "time_step_limit", {m.dt_limit_min, m.dt_limit_max});
  const std::string act = get_string_or(j, "hidden_act", "silu");
  SSM_CHECK(act == "silu" || act == "swish",
            "hf_mamba: {}: hidden_act '{}' is not supported (expected 'silu')", source, act);
  SSM_CHECK(get_bool_or(j, source, "rms_norm", true),
            "hf_mamba: {}: rms_norm = false is not supported (expected true)", source);
  SSM_CHECK(!get_bool_or(j, source, "norm_before_gate", false),
            "hf_mamba: {}: norm_before_gate = true is not supported (expected false)", source);
  c.tie_embeddings = get_bool_or(j, source, "tie_word_embeddings", false);
}

void parse_ssm_cfg_mamba1(const json& s, const std::string& ssm_source, nn::MambaLMConfig& c) {
  c.mixer.d_state = get_int_or(s, ssm_source, "d_state", 16);
  c.mixer.d_conv = get_int_or(s, ssm_source, "d_conv", 4);
  c.mixer.expand = get_int_or(s, ssm_source, "expand", 2);
  if (s.contains("dt_rank") &&
      !(s["dt_rank"].is_string() && s["dt_rank"].get<std::string>() == "auto"))
    c.mixer.dt_rank = get_int(s, ssm_source, "dt_rank");
}

// mamba_ssm's Mamba2 keyword arguments; defaults are its own.
void parse_ssm_cfg_mamba2(const json& s, const std::string& ssm_source, nn::MambaLMConfig& c) {
  nn::Mamba2Options& m = c.mamba2;
  m.d_state = get_int_or(s, ssm_source, "d_state", 128);
  m.d_conv = get_int_or(s, ssm_source, "d_conv", 4);
  m.expand = get_int_or(s, ssm_source, "expand", 2);
  m.head_dim = get_int_or(s, ssm_source, "headdim", 64);
  m.n_groups = get_int_or(s, ssm_source, "ngroups", 1);
  m.chunk_size = get_int_or(s, ssm_source, "chunk_size", 256);
  m.dt_min = get_positive_double_or(s, ssm_source, "dt_min", m.dt_min);
  m.dt_max = get_positive_double_or(s, ssm_source, "dt_max", m.dt_max);
  m.dt_init_floor = get_positive_double_or(s, ssm_source, "dt_init_floor", m.dt_init_floor);
  std::tie(m.A_init_min, m.A_init_max) =
      get_range_or(s, ssm_source, "A_init_range", {m.A_init_min, m.A_init_max});
  std::tie(m.dt_limit_min, m.dt_limit_max) =
      get_range_or(s, ssm_source, "dt_limit", {m.dt_limit_min, m.dt_limit_max});
  SSM_CHECK(m.d_inner() % m.head_dim == 0,
            "hf_mamba: {}: headdim {} expected to divide expand · d_model = {} · {} = {}",
            ssm_source, m.head_dim, m.expand, m.d_model, m.d_inner());
  if (s.contains("d_ssm") && !s["d_ssm"].is_null())
    SSM_CHECK(get_int(s, ssm_source, "d_ssm") == m.d_inner(),
              "hf_mamba: {}: d_ssm = {} is not supported (expected expand · d_model = {})",
              ssm_source, s["d_ssm"].dump(), m.d_inner());
  SSM_CHECK(!get_bool_or(s, ssm_source, "D_has_hdim", false),
            "hf_mamba: {}: D_has_hdim = true is not supported (expected false)", ssm_source);
  SSM_CHECK(get_bool_or(s, ssm_source, "rmsnorm", true),
            "hf_mamba: {}: rmsnorm = false is not supported (expected true)", ssm_source);
  SSM_CHECK(!get_bool_or(s, ssm_source, "norm_before_gate", false),
            "hf_mamba: {}: norm_before_gate = true is not supported (expected false)", ssm_source);
  SSM_CHECK(!get_bool_or(s, ssm_source, "learnable_init_states", false),
            "hf_mamba: {}: learnable_init_states = true is not supported (expected false)",
            ssm_source);
}

}  // namespace

nn::MambaLMConfig parse_mamba_config(const std::string& json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(quote_non_finite_literals(json_text));
  } catch (const json::exception& e) {
    throw Error(fmt::format("hf_mamba: {}: invalid JSON: {}", source, e.what()));
  }
  SSM_CHECK(j.is_object(), "hf_mamba: {}: expected a JSON object", source);
  nn::MambaLMConfig c;
  c.arch = detect_arch(j, source);
  const bool mamba2 = c.arch == "mamba2";
  if (j.contains("hidden_size")) {  // transformers' MambaConfig / Mamba2Config
    c.n_layer = get_int(j, source, "num_hidden_layers");
    c.vocab_size = get_int(j, source, "vocab_size");
    if (mamba2)
      parse_hf_mamba2(j, source, c);
    else
      parse_hf_mamba1(j, source, c);
    c.norm_eps = get_positive_double_or(j, source, "layer_norm_epsilon", c.norm_eps);
    c.mamba2.norm_eps = c.norm_eps;  // HF uses it for the gated norm too
    SSM_CHECK(get_bool_or(j, source, "use_conv_bias", true),
              "hf_mamba: {}: use_conv_bias = false is not supported (expected true)", source);
    SSM_CHECK(!get_bool_or(j, source, "use_bias", false),
              "hf_mamba: {}: use_bias = true (in_proj / out_proj biases) is not supported "
              "(expected false)",
              source);
  } else if (j.contains("d_model")) {  // mamba_ssm's MambaConfig
    c.mixer.d_model = c.mamba2.d_model = get_int(j, source, "d_model");
    c.n_layer = get_int(j, source, "n_layer");
    const int64_t vocab = get_int(j, source, "vocab_size");
    const int64_t multiple = get_int_or(j, source, "pad_vocab_size_multiple", 1);
    c.vocab_size = (vocab + multiple - 1) / multiple * multiple;
    SSM_CHECK(
        !j.contains("d_intermediate") || j["d_intermediate"].is_null() || j["d_intermediate"] == 0,
        "hf_mamba: {}: d_intermediate = {} (MLP blocks) is not supported (expected 0)", source,
        j.contains("d_intermediate") ? j["d_intermediate"].dump() : "");
    SSM_CHECK(!j.contains("attn_layer_idx") || j["attn_layer_idx"].is_null() ||
                  (j["attn_layer_idx"].is_array() && j["attn_layer_idx"].empty()),
              "hf_mamba: {}: attn_layer_idx = {} (attention layers) is not supported (expected "
              "[])",
              source, j.contains("attn_layer_idx") ? j["attn_layer_idx"].dump() : "");
    const json s =
        j.contains("ssm_cfg") && j["ssm_cfg"].is_object() ? j["ssm_cfg"] : json::object();
    const std::string ssm_source = source + " ssm_cfg";
    if (mamba2)
      parse_ssm_cfg_mamba2(s, ssm_source, c);
    else
      parse_ssm_cfg_mamba1(s, ssm_source, c);
    SSM_CHECK(get_bool_or(s, ssm_source, "conv_bias", true),
              "hf_mamba: {}: conv_bias = false is not supported (expected true)", ssm_source);
    SSM_CHECK(!get_bool_or(s, ssm_source, "bias", false),
              "hf_mamba: {}: bias = true is not supported (expected false)", ssm_source);
    SSM_CHECK(get_bool_or(j, source, "rms_norm", true),
              "hf_mamba: {}: rms_norm = false (LayerNorm) is not supported (expected true)",
              source);
    c.tie_embeddings = get_bool_or(j, source, "tie_embeddings", true);
  } else {
    throw Error(
        fmt::format("hf_mamba: {}: unknown architecture: neither 'hidden_size' (MambaForCausalLM, "
                    "Mamba2ForCausalLM) nor 'd_model' (mamba_ssm) is present",
                    source));
  }
  const int64_t d_conv = mamba2 ? c.mamba2.d_conv : c.mixer.d_conv;
  SSM_CHECK(d_conv >= 2, "hf_mamba: {}: conv kernel expected >= 2, got {}", source, d_conv);
  if (mamba2) {
    const auto& m = c.mamba2;
    SSM_CHECK(m.n_heads() % m.n_groups == 0,
              "hf_mamba: {}: n_groups {} expected to divide the number of heads {}", source,
              m.n_groups, m.n_heads());
    SSM_CHECK(m.dt_limit_min >= 0 && m.dt_limit_min < m.dt_limit_max,
              "hf_mamba: {}: time step limit expected 0 <= low < high, got [{}, {}]", source,
              m.dt_limit_min, m.dt_limit_max);
  }
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
