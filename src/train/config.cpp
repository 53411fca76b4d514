#include "ssm/train/config.h"

#include <toml++/toml.h>

#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "ssm/core/error.h"
#include "ssm/data/induction_heads.h"
#include "ssm/data/mqar.h"
#include "ssm/data/selective_copy.h"

namespace ssm::train {

namespace {

// One registry of every key: how to read it from TOML and how to write it back.
struct Field {
  std::function<void(const toml::node&, const std::string& key)> read;
  std::function<void(toml::table&)> write;
};

template <typename T>
Field field(T& slot, const std::string& name) {
  Field f;
  f.read = [&slot](const toml::node& n, const std::string& key) {
    if constexpr (std::is_same_v<T, std::string>) {
      auto v = n.value<std::string>();
      SSM_CHECK(v.has_value(), "config: '{}' must be a string", key);
      slot = *v;
    } else if constexpr (std::is_same_v<T, bool>) {
      auto v = n.value<bool>();
      SSM_CHECK(v.has_value(), "config: '{}' must be true or false", key);
      slot = *v;
    } else if constexpr (std::is_integral_v<T>) {
      SSM_CHECK(n.is_integer(), "config: '{}' must be an integer", key);
      slot = static_cast<T>(*n.value<int64_t>());
    } else {
      auto v = n.value<double>();
      SSM_CHECK(v.has_value(), "config: '{}' must be a number", key);
      slot = *v;
    }
  };
  f.write = [&slot, name](toml::table& t) { t.insert_or_assign(name, slot); };
  return f;
}

using Registry = std::map<std::string, std::map<std::string, Field>>;

Registry registry(RunConfig& c) {
  Registry r;
  auto& m = r["model"];
  m["layer"] = field(c.model.layer, "layer");
  m["encoder"] = field(c.model.encoder, "encoder");
  m["d_input"] = field(c.model.d_input, "d_input");
  m["d_model"] = field(c.model.d_model, "d_model");
  m["d_state"] = field(c.model.d_state, "d_state");
  m["n_layers"] = field(c.model.n_layers, "n_layers");
  m["n_classes"] = field(c.model.n_classes, "n_classes");
  m["dropout"] = field(c.model.dropout, "dropout");
  m["prenorm"] = field(c.model.prenorm, "prenorm");
  m["norm"] = field(c.model.norm, "norm");
  m["pooling"] = field(c.model.pooling, "pooling");
  m["init"] = field(c.model.init, "init");
  m["ptd_norm"] = field(c.model.ptd_norm, "ptd_norm");
  m["s5_blocks"] = field(c.model.s5_blocks, "s5_blocks");
  m["discretization"] = field(c.model.discretization, "discretization");
  m["dt_min"] = field(c.model.dt_min, "dt_min");
  m["dt_max"] = field(c.model.dt_max, "dt_max");
  m["max_length"] = field(c.model.max_length, "max_length");
  m["bidirectional"] = field(c.model.bidirectional, "bidirectional");
  m["arch"] = field(c.model.arch, "arch");
  m["expand"] = field(c.model.expand, "expand");
  m["d_conv"] = field(c.model.d_conv, "d_conv");
  m["dt_rank"] = field(c.model.dt_rank, "dt_rank");
  m["head_dim"] = field(c.model.head_dim, "head_dim");
  m["n_groups"] = field(c.model.n_groups, "n_groups");
  m["vocab_size"] = field(c.model.vocab_size, "vocab_size");
  auto& d = r["data"];
  d["dataset"] = field(c.data.dataset, "dataset");
  d["dir"] = field(c.data.dir, "dir");
  d["permute"] = field(c.data.permute, "permute");
  d["train_limit"] = field(c.data.train_limit, "train_limit");
  d["val_size"] = field(c.data.val_size, "val_size");
  d["test_limit"] = field(c.data.test_limit, "test_limit");
  d["path"] = field(c.data.path, "path");
  d["seq_len"] = field(c.data.seq_len, "seq_len");
  d["eval_length"] = field(c.data.eval_length, "eval_length");
  d["vocab_size"] = field(c.data.vocab_size, "vocab_size");
  d["num_tokens"] = field(c.data.num_tokens, "num_tokens");
  d["num_pairs"] = field(c.data.num_pairs, "num_pairs");
  d["train_size"] = field(c.data.train_size, "train_size");
  d["test_size"] = field(c.data.test_size, "test_size");
  d["val_fraction"] = field(c.data.val_fraction, "val_fraction");
  d["test_fraction"] = field(c.data.test_fraction, "test_fraction");
  auto& t = r["train"];
  t["seed"] = field(c.train.seed, "seed");
  t["batch_size"] = field(c.train.batch_size, "batch_size");
  t["epochs"] = field(c.train.epochs, "epochs");
  t["max_steps"] = field(c.train.max_steps, "max_steps");
  t["lr"] = field(c.train.lr, "lr");
  t["ssm_lr"] = field(c.train.ssm_lr, "ssm_lr");
  t["weight_decay"] = field(c.train.weight_decay, "weight_decay");
  t["warmup_steps"] = field(c.train.warmup_steps, "warmup_steps");
  t["min_lr_ratio"] = field(c.train.min_lr_ratio, "min_lr_ratio");
  t["grad_clip"] = field(c.train.grad_clip, "grad_clip");
  t["log_every"] = field(c.train.log_every, "log_every");
  t["eval_every"] = field(c.train.eval_every, "eval_every");
  t["checkpoint_every"] = field(c.train.checkpoint_every, "checkpoint_every");
  t["eval_batch_size"] = field(c.train.eval_batch_size, "eval_batch_size");
  t["init_from"] = field(c.train.init_from, "init_from");
  t["device"] = field(c.train.device, "device");
  return r;
}

void apply_override(toml::table& root, const std::string& spec) {
  const auto eq = spec.find('=');
  SSM_CHECK(eq != std::string::npos && eq > 0, "--set '{}': expected section.key=value", spec);
  const std::string path = spec.substr(0, eq), value = spec.substr(eq + 1);
  const auto dot = path.find('.');
  SSM_CHECK(dot != std::string::npos, "--set '{}': expected section.key=value (e.g. train.lr=0.01)",
            spec);
  const std::string section = path.substr(0, dot), key = path.substr(dot + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    parsed = toml::table{{"v", value}};  // a bare word is a string
  }
  if (!root.contains(section)) root.insert(section, toml::table{});
  auto* tbl = root[section].as_table();
  SSM_CHECK(tbl != nullptr, "--set '{}': '{}' is not a section", spec, section);
  tbl->insert_or_assign(key, *parsed["v"].node());
}

}  // namespace

bool is_token_task(const std::string& dataset) {
  return dataset == "selective-copy" || dataset == "induction-heads" || dataset == "mqar" ||
         dataset == "text";
}

void apply_task_defaults(DataConfig& d) {
  if (d.seq_len == 0) {
    if (d.dataset == "selective-copy")
      d.seq_len = data::SelectiveCopyOptions{}.seq_len;
    else if (is_token_task(d.dataset))
      d.seq_len = 256;
  }
  if (d.vocab_size == 0) {
    if (d.dataset == "selective-copy")
      d.vocab_size = data::SelectiveCopyOptions{}.vocab_size;
    else if (d.dataset == "induction-heads")
      d.vocab_size = data::InductionHeadsOptions{}.vocab_size;
    else if (d.dataset == "mqar")
      d.vocab_size = data::MqarOptions{}.vocab_size;
  }
}

data::SelectiveCopyOptions selective_copy_options(const DataConfig& d) {
  return {d.seq_len, d.num_tokens, d.vocab_size};
}
data::InductionHeadsOptions induction_heads_options(const DataConfig& d) {
  return {d.seq_len, d.vocab_size};
}
data::MqarOptions mqar_options(const DataConfig& d) {
  return {d.seq_len, d.num_pairs, d.vocab_size};
}

RunConfig parse_config(const std::string& text, const std::vector<std::string>& overrides,
                       const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    SSM_FAIL("config {}: line {}: {}", source, e.source().begin.line, e.description());
  }
  for (const auto& o : overrides) apply_override(root, o);
  RunConfig c;
  Registry r = registry(c);
  for (auto&& [section_key, section_node] : root) {
    const std::string section(section_key.str());
    auto it = r.find(section);
    SSM_CHECK(it != r.end(), "config {}: unknown section [{}] (expected model, data or train)",
              source, section);
    auto* tbl = section_node.as_table();
    SSM_CHECK(tbl != nullptr, "config {}: '{}' must be a section", source, section);
    for (auto&& [k, v] : *tbl) {
      const std::string key(k.str());
      auto f = it->second.find(key);
      SSM_CHECK(f != it->second.end(), "config {}: unknown key '{}.{}'", source, section, key);
      f->second.read(v, section + "." + key);
    }
  }
  apply_task_defaults(c.data);
  validate(c);
  return c;
}

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  SSM_CHECK(in.good(), "config: cannot open '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), overrides, path);
}

std::string config_to_toml(const RunConfig& c_in) {
  RunConfig c = c_in;
  Registry r = registry(c);
  toml::table root;
  for (auto& [section, fields] : r) {
    toml::table t;
    for (auto& [name, f] : fields) f.write(t);
    root.insert(section, t);
  }
  std::stringstream ss;
  ss << root << "\n";
  return ss.str();
}

void validate(const RunConfig& c) {
  auto one_of = [](const std::string& v, std::initializer_list<const char*> options,
                   const char* key) {
    for (const char* o : options)
      if (v == o) return;
    std::string list;
    for (const char* o : options) list += (list.empty() ? "" : ", ") + std::string(o);
    SSM_FAIL("config: '{}' = '{}' is not one of: {}", key, v, list);
  };
  auto positive = [](double v, const char* key) {
    SSM_CHECK(v > 0, "config: '{}' must be positive, got {}", key, v);
  };
  auto non_negative = [](double v, const char* key) {
    SSM_CHECK(v >= 0, "config: '{}' must be ≥ 0, got {}", key, v);
  };
  const auto& m = c.model;
  const auto& d = c.data;
  one_of(d.dataset,
         {"fashion-mnist", "mnist", "listops", "selective-copy", "induction-heads", "mqar", "text"},
         "data.dataset");
  const bool lm = is_token_task(d.dataset);
  if (lm) {
    SSM_CHECK(!m.arch.empty(),
              "config: data.dataset '{}' trains a language model: set 'model.arch' to mamba1, "
              "mamba2 or mamba3",
              d.dataset);
    one_of(m.arch, {"mamba1", "mamba2", "mamba3"}, "model.arch");
  } else {
    SSM_CHECK(m.arch.empty(),
              "config: 'model.arch' = '{}' builds a language model, but data.dataset '{}' is "
              "sequence classification (leave model.arch out and choose model.layer)",
              m.arch, d.dataset);
  }
  one_of(c.train.device, {"cpu", "cuda"}, "train.device");
  if (c.train.device == "cuda")
    SSM_CHECK(m.arch == "mamba1" || m.arch == "mamba2",
              "config: 'train.device' = 'cuda' runs the language models of model.arch mamba1 and "
              "mamba2; {} has no CUDA kernels yet (use train.device = 'cpu')",
              m.arch.empty() ? "model.layer '" + m.layer + "'" : "model.arch '" + m.arch + "'");
  positive(m.d_model, "model.d_model");
  positive(m.d_state, "model.d_state");
  positive(m.n_layers, "model.n_layers");
  positive(m.dt_min, "model.dt_min");
  SSM_CHECK(m.dt_max >= m.dt_min, "config: 'model.dt_max' ({}) must be ≥ 'model.dt_min' ({})",
            m.dt_max, m.dt_min);
  if (lm) {
    positive(m.expand, "model.expand");
    positive(m.d_conv, "model.d_conv");
    non_negative(m.dt_rank, "model.dt_rank");
    positive(m.head_dim, "model.head_dim");
    positive(m.n_groups, "model.n_groups");
    non_negative(m.vocab_size, "model.vocab_size");
    if (m.arch != "mamba1") {
      const int64_t d_inner = m.expand * m.d_model;
      SSM_CHECK(d_inner % m.head_dim == 0,
                "config: 'model.head_dim' ({}) must divide D_inner = model.expand × model.d_model "
                "= {}",
                m.head_dim, d_inner);
      SSM_CHECK((d_inner / m.head_dim) % m.n_groups == 0,
                "config: 'model.n_groups' ({}) must divide the {} heads (D_inner / model.head_dim)",
                m.n_groups, d_inner / m.head_dim);
    }
  } else {
    one_of(m.layer, {"s4d", "s4", "s5"}, "model.layer");
    one_of(m.encoder, {"linear", "embedding"}, "model.encoder");
    one_of(m.norm, {"layer", "batch"}, "model.norm");
    one_of(m.pooling, {"mean", "last"}, "model.pooling");
    one_of(m.init, {"lin", "inv", "real", "legs", "legt", "legs-ptd"}, "model.init");
    non_negative(m.ptd_norm, "model.ptd_norm");
    non_negative(m.s5_blocks, "model.s5_blocks");
    if (m.layer == "s5" && m.s5_blocks > 0)
      SSM_CHECK(m.d_state % m.s5_blocks == 0 && (m.d_state / m.s5_blocks) % 2 == 0,
                "config: 'model.s5_blocks' ({}) must split model.d_state ({}) into blocks of even "
                "order",
                m.s5_blocks, m.d_state);
    if (m.init == "legs-ptd") {
      SSM_CHECK(m.layer == "s4d" || m.layer == "s5",
                "config: 'model.init' = 'legs-ptd' is for model.layer s4d or s5, got '{}'",
                m.layer);
      positive(m.ptd_norm, "model.ptd_norm");
    }
    one_of(m.discretization, {"zoh", "bilinear"}, "model.discretization");
    positive(m.d_input, "model.d_input");
    SSM_CHECK(m.d_state % 2 == 0,
              "config: 'model.d_state' must be even (S4D keeps N/2 conjugate pairs), got {}",
              m.d_state);
    SSM_CHECK(m.n_classes >= 1, "config: 'model.n_classes' must be ≥ 1, got {}", m.n_classes);
    SSM_CHECK(m.dropout >= 0 && m.dropout < 1, "config: 'model.dropout' must be in [0, 1), got {}",
              m.dropout);
    non_negative(m.max_length, "model.max_length");
  }
  non_negative(d.train_limit, "data.train_limit");
  non_negative(d.val_size, "data.val_size");
  non_negative(d.test_limit, "data.test_limit");
  non_negative(d.seq_len, "data.seq_len");
  non_negative(d.eval_length, "data.eval_length");
  non_negative(d.vocab_size, "data.vocab_size");
  DataConfig resolved = d;
  apply_task_defaults(resolved);
  const int64_t eval_length = resolved.eval_length > 0 ? resolved.eval_length : resolved.seq_len;
  for (const int64_t len : {resolved.seq_len, eval_length}) {
    DataConfig at = resolved;
    at.seq_len = len;
    if (d.dataset == "selective-copy")
      data::validate(selective_copy_options(at), "data.");
    else if (d.dataset == "induction-heads")
      data::validate(induction_heads_options(at), "data.");
    else if (d.dataset == "mqar")
      data::validate(mqar_options(at), "data.");
  }
  if (d.dataset == "selective-copy" || d.dataset == "induction-heads" || d.dataset == "mqar") {
    positive(d.train_size, "data.train_size");
    positive(d.val_size, "data.val_size");
    positive(d.test_size, "data.test_size");
  }
  if (d.dataset == "text") {
    SSM_CHECK(!d.path.empty(), "config: data.dataset 'text' needs 'data.path' (a text file)");
    positive(resolved.seq_len, "data.seq_len");
    SSM_CHECK(d.val_fraction > 0 && d.val_fraction < 1,
              "config: 'data.val_fraction' must be in (0, 1), got {}", d.val_fraction);
    SSM_CHECK(d.test_fraction >= 0 && d.val_fraction + d.test_fraction < 1,
              "config: 'data.test_fraction' must be ≥ 0 with data.val_fraction + "
              "data.test_fraction < 1, got {}",
              d.test_fraction);
  }
  const auto& t = c.train;
  non_negative(t.seed, "train.seed");
  positive(t.batch_size, "train.batch_size");
  positive(t.epochs, "train.epochs");
  non_negative(t.max_steps, "train.max_steps");
  positive(t.lr, "train.lr");
  positive(t.ssm_lr, "train.ssm_lr");
  non_negative(t.weight_decay, "train.weight_decay");
  non_negative(t.warmup_steps, "train.warmup_steps");
  SSM_CHECK(t.min_lr_ratio >= 0 && t.min_lr_ratio <= 1,
            "config: 'train.min_lr_ratio' must be in [0, 1], got {}", t.min_lr_ratio);
  non_negative(t.grad_clip, "train.grad_clip");
  positive(t.log_every, "train.log_every");
  non_negative(t.eval_every, "train.eval_every");
  non_negative(t.checkpoint_every, "train.checkpoint_every");
  non_negative(t.eval_batch_size, "train.eval_batch_size");
}

}  // namespace ssm::train
