// Loading Hugging Face Mamba-1 model directories (single file, sharded, mamba_ssm config),
// checked against a PyTorch forward written from the equations; load errors; generation
// (greedy = argmax roll-out, seeded sampling) and `ssm generate`.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ssm/infer/generate.h"
#include "ssm/io/hf_mamba.h"
#include "ssm/io/safetensors.h"
#include "ssm/io/tokenizer.h"
#include "ssm/ops/elementwise.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using nlohmann::json;
using ssm::testing::rel_error;
namespace fs = std::filesystem;

namespace {

struct TinyShape {
  int64_t d_model = 8, n_layer = 2, d_state = 4, expand = 2, d_conv = 4, vocab = 256;
  int64_t dt_rank() const { return (d_model + 15) / 16; }
  int64_t d_inner() const { return expand * d_model; }
};

// Random weights under exactly the checkpoint's names and shapes (written independently of
// our module, so the loader's name mapping is what is tested).
std::map<std::string, Tensor> hf_tensors(
    const TinyShape& s, uint64_t seed,
    const std::string& embedding_name = "backbone.embeddings.weight") {
  Generator g(seed);
  auto r = [&](const Shape& shape, double scale, double offset = 0) {
    return add_scalar(mul_scalar(randn(shape, DType::F32, &g), scale), offset);
  };
  const int64_t Di = s.d_inner(), N = s.d_state, R = s.dt_rank(), D = s.d_model;
  std::map<std::string, Tensor> t;
  t[embedding_name] = r({s.vocab, D}, 0.5);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    t[p + "norm.weight"] = r({D}, 0.1, 1.0);
    t[p + "mixer.in_proj.weight"] = r({2 * Di, D}, 0.3);
    t[p + "mixer.conv1d.weight"] = r({Di, 1, s.d_conv}, 0.4);
    t[p + "mixer.conv1d.bias"] = r({Di}, 0.2);
    t[p + "mixer.x_proj.weight"] = r({R + 2 * N, Di}, 0.3);
    t[p + "mixer.dt_proj.weight"] = r({Di, R}, 0.5);
    t[p + "mixer.dt_proj.bias"] = r({Di}, 0.5, -3.0);
    t[p + "mixer.A_log"] = r({Di, N}, 0.3, 0.7);
    t[p + "mixer.D"] = r({Di}, 0.3, 1.0);
    t[p + "mixer.out_proj.weight"] = r({D, Di}, 0.3);
  }
  t["backbone.norm_f.weight"] = r({D}, 0.1, 1.0);
  return t;
}

json hf_config(const TinyShape& s) {
  return {{"architectures", {"MambaForCausalLM"}},
          {"model_type", "mamba"},
          {"hidden_size", s.d_model},
          {"num_hidden_layers", s.n_layer},
          {"state_size", s.d_state},
          {"expand", s.expand},
          {"conv_kernel", s.d_conv},
          {"time_step_rank", "auto"},
          {"vocab_size", s.vocab},
          {"layer_norm_epsilon", 1e-5},
          {"use_conv_bias", true},
          {"use_bias", false},
          {"tie_word_embeddings", true},
          {"pad_vocab_size_multiple", 8}};
}

// GPT-2's byte-level alphabet (byte b spelled by itself when printable, else 256 + rank).
std::string spell_byte(int b) {
  const auto printable = [](int x) {
    return (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174;
  };
  int cp = b;
  if (!printable(b)) {
    int k = 0;
    for (int x = 0; x < b; ++x) k += !printable(x);
    cp = 256 + k;
  }
  std::string out;
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
  return out;
}

// A tokenizer.json whose 256 tokens are the bytes themselves (no merges): id = byte value.
json byte_tokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[spell_byte(b)] = b;
  return {{"version", "1.0"},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer",
           {{"type", "ByteLevel"},
            {"add_prefix_space", false},
            {"trim_offsets", true},
            {"use_regex", true}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"fuse_unk", false},
            {"vocab", vocab},
            {"merges", json::array()}}}};
}

Tensor ids_tensor(const std::vector<int64_t>& ids, int64_t B) {
  return Tensor::from_data(ids, {B, static_cast<int64_t>(ids.size()) / B});
}

class HfMamba : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ssm_hf_mamba_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_text(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  // config.json + model.safetensors (+ tokenizer.json).
  void write_model(const json& config, const std::map<std::string, Tensor>& tensors) const {
    write_text("config.json", config.dump(2));
    io::write_safetensors((dir_ / "model.safetensors").string(), tensors, {{"format", "pt"}});
    write_text("tokenizer.json", byte_tokenizer().dump());
  }
  std::string dir() const { return dir_.string(); }
  fs::path dir_;
};

// Logits from tests/python/mamba_ref.py for the same weights.
Tensor torch_logits(const std::map<std::string, Tensor>& tensors, const Tensor& ids) {
  std::map<std::string, Tensor> in;
  for (const auto& [k, v] : tensors) in[k] = v.to(DType::F64);
  in["ids"] = ids.to(DType::F64);
  in["eps"] = Tensor::scalar(1e-5, DType::F64);
  return ssm::testing::run_torch("mamba_ref.py", in).at("logits");
}

const std::vector<int64_t> kIds = {3, 200, 17, 255, 0, 42, 42, 9, 130, 77, 5, 64};

}  // namespace

TEST_F(HfMamba, ConfigFields) {
  json c = hf_config(TinyShape{});
  c["time_step_rank"] = 5;
  c["layer_norm_epsilon"] = 1e-6;
  c["tie_word_embeddings"] = false;
  auto cfg = io::parse_mamba_config(c.dump(), "config.json");
  EXPECT_EQ(cfg.mixer.d_model, 8);
  EXPECT_EQ(cfg.n_layer, 2);
  EXPECT_EQ(cfg.mixer.dt_rank, 5);
  EXPECT_EQ(cfg.mixer.d_conv, 4);
  EXPECT_EQ(cfg.norm_eps, 1e-6);
  EXPECT_FALSE(cfg.tie_embeddings);
  c["hidden_size"] = 40;
  c["time_step_rank"] = "auto";
  EXPECT_EQ(io::parse_mamba_config(c.dump(), "c").mixer.resolved_dt_rank(), 3);
  const json original = {{"d_model", 24},       {"n_layer", 3},
                         {"vocab_size", 50277}, {"ssm_cfg", {{"d_state", 8}}},
                         {"rms_norm", true},    {"pad_vocab_size_multiple", 8}};
  cfg = io::parse_mamba_config(original.dump(), "c");
  EXPECT_EQ(cfg.vocab_size, 50280);
  EXPECT_EQ(cfg.mixer.d_state, 8);
  EXPECT_EQ(cfg.mixer.d_model, 24);
  EXPECT_EQ(cfg.n_layer, 3);
}

TEST_F(HfMamba, LoadedModelMatchesTorch) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  const TinyShape s;
  const auto tensors = hf_tensors(s, 1);
  write_model(hf_config(s), tensors);
  const Tensor ids = ids_tensor(kIds, 2);
  const Tensor ref = torch_logits(tensors, ids);
  const auto m64 = io::load_hf_mamba(dir(), DType::F64);
  EXPECT_LE(rel_error(m64->forward(ids), ref), 1e-10);
  const auto m32 = io::load_hf_mamba(dir(), DType::F32);
  EXPECT_LE(rel_error(m32->forward(ids), ref), 1e-5);
}

// A bfloat16 checkpoint (as HF publishes many) in the same layout: our writer has no BF16, so
// the file is written here by hand. Loading converts to f32; the model must equal the one
// loaded from an f32 file of the same (bf16-rounded) values, bit for bit.
namespace {
uint16_t to_bf16(float f) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
float from_bf16(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void write_bf16_safetensors(const fs::path& path, const std::map<std::string, Tensor>& tensors) {
  json header = json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    const uint64_t begin = data.size();
    for (double v : t.to_vector()) {
      const uint16_t h = to_bf16(static_cast<float>(v));
      data.append(reinterpret_cast<const char*>(&h), 2);  // little-endian hosts only (x86, arm)
    }
    header[name] = {
        {"dtype", "BF16"}, {"shape", t.shape()}, {"data_offsets", {begin, data.size()}}};
  }
  const std::string h = header.dump();
  const uint64_t n = h.size();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << h << data;
}
}  // namespace

TEST_F(HfMamba, Bfloat16CheckpointLoadsAsItsFloat32Values) {
  const TinyShape s;
  const auto tensors = hf_tensors(s, 4);
  std::map<std::string, Tensor> rounded;  // the values a bf16 file holds, as f32
  for (const auto& [name, t] : tensors) {
    std::vector<double> v = t.to_vector();
    for (double& x : v) x = from_bf16(to_bf16(static_cast<float>(x)));
    rounded[name] = Tensor::from_vector(v, t.shape(), DType::F32);
  }
  write_model(hf_config(s), rounded);
  const Tensor ids = ids_tensor(kIds, 3);
  const Tensor from_f32 = io::load_hf_mamba(dir(), DType::F32)->forward(ids);
  write_bf16_safetensors(dir_ / "model.safetensors", tensors);
  ASSERT_EQ(io::read_safetensors_header((dir_ / "model.safetensors").string()).tensors[0].dtype,
            "BF16");
  const Tensor from_bf16_file = io::load_hf_mamba(dir(), DType::F32)->forward(ids);
  EXPECT_EQ(rel_error(from_bf16_file, from_f32), 0.0);
  // And the rounding mattered: the unrounded f32 weights give other logits.
  write_model(hf_config(s), tensors);
  EXPECT_GT(rel_error(io::load_hf_mamba(dir(), DType::F32)->forward(ids), from_f32), 1e-4);
}

TEST_F(HfMamba, ShardedEqualsSingleFile) {
  const TinyShape s;
  const auto tensors = hf_tensors(s, 2);
  write_model(hf_config(s), tensors);
  const Tensor ids = ids_tensor(kIds, 3);
  const Tensor single = io::load_hf_mamba(dir(), DType::F64)->forward(ids);
  fs::remove(dir_ / "model.safetensors");
  // Two shards split by name; the index maps every name to its shard.
  std::map<std::string, Tensor> a, b;
  json weight_map = json::object();
  int i = 0;
  for (const auto& [name, t] : tensors) {
    const bool first = (i++ % 2) == 0;
    (first ? a : b)[name] = t;
    weight_map[name] =
        first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  io::write_safetensors((dir_ / "model-00001-of-00002.safetensors").string(), a);
  io::write_safetensors((dir_ / "model-00002-of-00002.safetensors").string(), b);
  write_text("model.safetensors.index.json",
             json({{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}).dump());
  const Tensor sharded = io::load_hf_mamba(dir(), DType::F64)->forward(ids);
  EXPECT_EQ(rel_error(sharded, single), 0.0);
  // A name the index lists but its shard lacks.
  ASSERT_TRUE(a.count("backbone.embeddings.weight"));  // name order: it is the first
  weight_map["backbone.embeddings.weight"] = "model-00002-of-00002.safetensors";
  write_text("model.safetensors.index.json", json({{"weight_map", weight_map}}).dump());
  EXPECT_SSM_ERROR(io::load_hf_mamba(dir()), "backbone.embeddings.weight", "model-00002-of-00002");
}

TEST_F(HfMamba, OriginalMambaSsmLayoutWithPaddedVocab) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  TinyShape s;
  s.vocab = 24;  // 21 padded up to a multiple of 8
  s.n_layer = 1;
  const auto tensors = hf_tensors(s, 3, "backbone.embedding.weight");
  const json config = {{"d_model", s.d_model},   {"n_layer", 1},
                       {"vocab_size", 21},       {"ssm_cfg", {{"d_state", s.d_state}}},
                       {"rms_norm", true},       {"residual_in_fp32", true},
                       {"fused_add_norm", true}, {"pad_vocab_size_multiple", 8}};
  write_model(config, tensors);
  const Tensor ids = ids_tensor({1, 20, 3, 7, 0}, 1);
  const auto m = io::load_hf_mamba(dir(), DType::F64);
  const Tensor logits = m->forward(ids);
  EXPECT_EQ(shape_str(logits.shape()), "(1, 5, 24)");
  EXPECT_LE(rel_error(logits, torch_logits(tensors, ids)), 1e-10);
}

TEST_F(HfMamba, UntiedHeadIsLoaded) {
  const TinyShape s;
  auto tensors = hf_tensors(s, 4);
  json config = hf_config(s);
  config["tie_word_embeddings"] = false;
  Generator g(5);
  tensors["lm_head.weight"] = randn({s.vocab, s.d_model}, DType::F32, &g);
  write_model(config, tensors);
  const auto m = io::load_hf_mamba(dir(), DType::F64);
  EXPECT_EQ(rel_error(m->output_weight(), tensors.at("lm_head.weight").to(DType::F64)), 0.0);
  // Missing when untied: an error naming it.
  tensors.erase("lm_head.weight");
  write_model(config, tensors);
  EXPECT_SSM_ERROR(io::load_hf_mamba(dir()), "missing tensor 'lm_head.weight'", "(256, 8)");
}

TEST_F(HfMamba, WrongShapeNamesTensorAndBothShapes) {
  const TinyShape s;
  auto tensors = hf_tensors(s, 6);
  Generator g(7);
  tensors["backbone.layers.1.mixer.x_proj.weight"] = randn({10, 16}, DType::F32, &g);
  write_model(hf_config(s), tensors);
  EXPECT_SSM_ERROR(io::load_hf_mamba(dir()), "backbone.layers.1.mixer.x_proj.weight",
                   "expected shape (9, 16)" /* R + 2N = 1 + 8 */, "got (10, 16)");
  tensors = hf_tensors(s, 6);
  tensors["backbone.layers.0.mixer.conv1d.weight"] = randn({16, 4}, DType::F32, &g);
  write_model(hf_config(s), tensors);
  EXPECT_SSM_ERROR(io::load_hf_mamba(dir()), "backbone.layers.0.mixer.conv1d.weight",
                   "expected shape (16, 1, 4)", "got (16, 4)");
}

TEST_F(HfMamba, MissingAndUnexpectedTensors) {
  const TinyShape s;
  auto tensors = hf_tensors(s, 8);
  tensors.erase("backbone.layers.1.mixer.A_log");
  write_model(hf_config(s), tensors);
  EXPECT_SSM_ERROR(io::load_hf_mamba(dir()), "missing tensor 'backbone.layers.1.mixer.A_log'",
                   "(16, 4)");
  tensors = hf_tensors(s, 8);
  Generator g(9);
  tensors["backbone.layers.2.norm.weight"] = randn({8}, DType::F32, &g);
  write_model(hf_config(s), tensors);
  EXPECT_SSM_ERROR(io::load_hf_mamba(dir()), "unexpected tensor 'backbone.layers.2.norm.weight'");
  fs::remove(dir_ / "model.safetensors");
  EXPECT_SSM_ERROR(io::load_hf_mamba(dir()), "model.safetensors.index.json");
}

TEST_F(HfMamba, UnknownArchitecture) {
  const TinyShape s;
  json c = hf_config(s);
  c["architectures"] = {"JambaForCausalLM"};
  EXPECT_SSM_ERROR(io::parse_mamba_config(c.dump(), "config.json"), "config.json",
                   "unknown architecture 'JambaForCausalLM'");
  c = hf_config(s);
  c.erase("architectures");
  c["model_type"] = "falcon_mamba";
  EXPECT_SSM_ERROR(io::parse_mamba_config(c.dump(), "config.json"), "unknown architecture",
                   "falcon_mamba");
  const json hyena = {
      {"d_model", 8}, {"n_layer", 1}, {"vocab_size", 8}, {"ssm_cfg", {{"layer", "Hyena"}}}};
  EXPECT_SSM_ERROR(io::parse_mamba_config(hyena.dump(), "c.json"), "unknown architecture", "Hyena");
  EXPECT_SSM_ERROR(io::parse_mamba_config(json({{"n_embd", 8}}).dump(), "c.json"),
                   "unknown architecture");
  c = hf_config(s);
  c.erase("num_hidden_layers");
  EXPECT_SSM_ERROR(io::parse_mamba_config(c.dump(), "config.json"), "config.json",
                   "missing field 'num_hidden_layers'");
  EXPECT_SSM_ERROR(io::parse_mamba_config("{", "config.json"), "config.json", "invalid JSON");
}

TEST_F(HfMamba, TruncatedSafetensors) {
  const TinyShape s;
  write_model(hf_config(s), hf_tensors(s, 10));
  const fs::path file = dir_ / "model.safetensors";
  fs::resize_file(file, fs::file_size(file) - 100);
  EXPECT_SSM_ERROR(io::load_hf_mamba(dir()), "model.safetensors");
  fs::resize_file(file, 5);
  EXPECT_SSM_ERROR(io::load_hf_mamba(dir()), "model.safetensors");
}

// ---------------------------------------------------------------- generation

TEST_F(HfMamba, GreedyEqualsArgmaxOfForwardRollout) {
  const TinyShape s;
  write_model(hf_config(s), hf_tensors(s, 11));
  const auto m = io::load_hf_mamba(dir(), DType::F64);
  const std::vector<int64_t> prompt = {72, 101, 108, 108};
  infer::GenerateOptions o;
  o.max_new_tokens = 10;
  o.sampling.temperature = 0;
  std::vector<int64_t> streamed;
  const auto r = infer::generate(*m, prompt, o, [&](int64_t id) {
    streamed.push_back(id);
    return true;
  });
  ASSERT_EQ(r.ids.size(), 10u);
  EXPECT_EQ(streamed, r.ids);
  EXPECT_GT(r.prompt_tokens_per_s, 0);
  EXPECT_GT(r.gen_tokens_per_s, 0);
  // Roll out with full forwards: each next id is the argmax of the last position's logits.
  std::vector<int64_t> seq = prompt;
  for (int i = 0; i < 10; ++i) {
    const Tensor logits = m->forward(ids_tensor(seq, 1)).select(0, 0);
    const Tensor last = logits.select(0, logits.size(0) - 1);
    int64_t best = 0;
    for (int64_t v = 1; v < s.vocab; ++v)
      if (last.at({v}) > last.at({best})) best = v;
    seq.push_back(best);
  }
  EXPECT_EQ(std::vector<int64_t>(seq.begin() + 4, seq.end()), r.ids);
  // The callback can stop early.
  int calls = 0;
  EXPECT_EQ(infer::generate(*m, prompt, o, [&](int64_t) { return ++calls < 3; }).ids.size(), 3u);
}

TEST_F(HfMamba, SeededSamplingIsReproducible) {
  const TinyShape s;
  write_model(hf_config(s), hf_tensors(s, 12));
  const auto m = io::load_hf_mamba(dir(), DType::F32);
  infer::GenerateOptions o;
  o.max_new_tokens = 16;
  o.sampling = {1.5, 0, 1.0};
  o.seed = 99;
  const auto a = infer::generate(*m, {1, 2, 3}, o), b = infer::generate(*m, {1, 2, 3}, o);
  EXPECT_EQ(a.ids, b.ids);
  o.seed = 100;
  EXPECT_NE(infer::generate(*m, {1, 2, 3}, o).ids, a.ids);  // 16 draws over 256 ids
  EXPECT_SSM_ERROR(infer::generate(*m, {}, o), "generate", "prompt");
  o.max_new_tokens = 0;
  EXPECT_SSM_ERROR(infer::generate(*m, {1}, o), "generate", "max_new_tokens", "got 0");
}

TEST(Sampling, TopKTopPAndTemperature) {
  const Tensor logits = Tensor::from_vector({0.0, 3.0, 2.9, -1.0, 1.0}, {5}, DType::F64);
  Generator g(1);
  EXPECT_EQ(infer::sample_token(logits, {0.0, 0, 1.0}, g), 1);
  // top_k = 1 is greedy at any temperature.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(infer::sample_token(logits, {5.0, 1, 1.0}, g), 1);
  // top_k = 2: only ids 1 and 2, both seen.
  std::map<int64_t, int> seen;
  for (int i = 0; i < 400; ++i) ++seen[infer::sample_token(logits, {1.0, 2, 1.0}, g)];
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(seen[1], 100);
  EXPECT_GT(seen[2], 100);
  // top_p: p(1) ≈ 0.47, p(2) ≈ 0.43 at T = 1 → top_p 0.5 keeps {1, 2}, 0.3 keeps {1}.
  seen.clear();
  for (int i = 0; i < 400; ++i) ++seen[infer::sample_token(logits, {1.0, 0, 0.5}, g)];
  EXPECT_EQ(seen.size(), 2u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(infer::sample_token(logits, {1.0, 0, 0.3}, g), 1);
  // Frequencies follow softmax(logits / T) (T = 2, all ids): 20000 draws, 4σ bounds.
  std::vector<double> p = {0, 3, 2.9, -1, 1};
  double z = 0;
  for (double& v : p) z += v = std::exp(v / 2);
  std::vector<int> count(5);
  for (int i = 0; i < 20000; ++i) ++count[infer::sample_token(logits, {2.0, 0, 1.0}, g)];
  for (int v = 0; v < 5; ++v) {
    const double q = p[v] / z, sd = std::sqrt(q * (1 - q) / 20000);
    EXPECT_NEAR(count[v] / 20000.0, q, 4 * sd) << v;
  }
  EXPECT_SSM_ERROR(infer::sample_token(logits, {-1.0, 0, 1.0}, g), "temperature", "-1");
  EXPECT_SSM_ERROR(infer::sample_token(logits, {1.0, 0, 0.0}, g), "top_p");
  EXPECT_SSM_ERROR(
      infer::sample_token(Tensor::from_vector({1.0, NAN}, {2}, DType::F64), {1.0, 0, 1.0}, g),
      "NaN", "id 1");
}

// ---------------------------------------------------------------- the CLI

namespace {

struct CliRun {
  int code;
  std::string out, err;
};

CliRun run_cli(const std::string& args) {
  const fs::path err_file =
      fs::temp_directory_path() / ("ssm_gen_err_" + std::to_string(::getpid()));
  FILE* p = popen((ssm::testing::cli_path() + " " + args + " 2>" + err_file.string()).c_str(), "r");
  CliRun r{};
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream e(err_file);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  fs::remove(err_file);
  return r;
}

}  // namespace

TEST_F(HfMamba, CliGenerate) {
  const std::string cli = ssm::testing::cli_path();
  if (cli.empty() || !fs::exists(cli)) GTEST_SKIP() << "SSM_CLI not set (run through ctest)";
  const TinyShape s;
  write_model(hf_config(s), hf_tensors(s, 13));
  // In-process greedy ids for the same prompt ("Hi!" is bytes 72 105 33 with this tokenizer).
  const auto m = io::load_hf_mamba(dir(), DType::F32);
  infer::GenerateOptions o;
  o.max_new_tokens = 6;
  o.sampling.temperature = 0;
  const auto expected = infer::generate(*m, {72, 105, 33}, o).ids;

  CliRun r = run_cli("generate " + dir() + " --prompt 'Hi!' -n 6 --temperature 0 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["ids"].get<std::vector<int64_t>>(), expected);
  EXPECT_TRUE(j["text"].is_string());
  EXPECT_GT(j["prompt_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["gen_tokens_per_s"].get<double>(), 0);

  r = run_cli("generate " + dir() +
              " --prompt 'Hi!' -n 6 --temperature 0.8 --top-k 20 --top-p 0.9 --seed 3");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Hi!", 0), 0u) << r.out;  // the prompt, then the streamed text
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;

  r = run_cli("generate " + dir() + " --prompt 'Hi' -n 0");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("-n expected > 0, got 0"), std::string::npos) << r.err;
  r = run_cli("generate " + dir() + "/nope --prompt 'Hi' -n 2");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;  // names the path
}

// A prompt that is not valid UTF-8 is tokenized at byte level (never a crash or a refusal):
// the CLI gives the ids of the in-process tokenizer + generate, and its JSON text stays valid.
TEST_F(HfMamba, CliGenerateInvalidUtf8Prompt) {
  const std::string cli = ssm::testing::cli_path();
  if (cli.empty() || !fs::exists(cli)) GTEST_SKIP() << "SSM_CLI not set (run through ctest)";
  const TinyShape s;
  write_model(hf_config(s), hf_tensors(s, 14));
  const std::string prompt = "A\xff\xfe\xc3(B";  // a stray continuation byte, a cut sequence
  const io::Tokenizer tok = io::Tokenizer::from_file(dir() + "/tokenizer.json");
  const std::vector<int64_t> prompt_ids = tok.encode(prompt);
  ASSERT_EQ(tok.decode(prompt_ids), prompt);  // byte-exact round trip
  const auto m = io::load_hf_mamba(dir(), DType::F32);
  infer::GenerateOptions o;
  o.max_new_tokens = 4;
  o.sampling.temperature = 0;
  const auto expected = infer::generate(*m, prompt_ids, o).ids;

  // The shell's printf writes the raw bytes into the argument.
  const std::string arg = "\"$(printf 'A\\377\\376\\303(B')\"";
  CliRun r = run_cli("generate " + dir() + " --prompt " + arg + " -n 4 --temperature 0 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);  // throws if the text were not valid UTF-8 JSON
  EXPECT_EQ(j["ids"].get<std::vector<int64_t>>(), expected);
  r = run_cli("generate " + dir() + " --prompt " + arg + " -n 4 --temperature 0");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind(prompt, 0), 0u) << "streams the prompt's bytes as they are";
}
