// Loading Hugging Face Mamba-2 model directories (transformers' Mamba2ForCausalLM and the
// original mamba_ssm layout), checked against a PyTorch forward written from the equations;
// config parsing and its errors; generation and `ssm generate` on a Mamba-2 directory.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ssm/infer/generate.h"
#include "ssm/io/hf_mamba.h"
#include "ssm/io/safetensors.h"
#include "ssm/ops/elementwise.h"
#include "support/hf_fixtures.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using nlohmann::json;
using ssm::testing::rel_error;
namespace fs = std::filesystem;

namespace {

// Four heads of P = 4 in two groups of N = 4.
struct TinyShape {
  int64_t d_model = 8, n_layer = 2, d_state = 4, expand = 2, head_dim = 4, n_groups = 2, d_conv = 4,
          vocab = 256;
  int64_t d_inner() const { return expand * d_model; }
  int64_t heads() const { return d_inner() / head_dim; }
  int64_t conv_dim() const { return d_inner() + 2 * n_groups * d_state; }
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
  const int64_t Di = s.d_inner(), H = s.heads(), D = s.d_model, Cd = s.conv_dim();
  std::map<std::string, Tensor> t;
  t[embedding_name] = r({s.vocab, D}, 0.5);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    t[p + "norm.weight"] = r({D}, 0.1, 1.0);
    t[p + "mixer.in_proj.weight"] = r({Di + Cd + H, D}, 0.3);
    t[p + "mixer.conv1d.weight"] = r({Cd, 1, s.d_conv}, 0.4);
    t[p + "mixer.conv1d.bias"] = r({Cd}, 0.2);
    t[p + "mixer.dt_bias"] = r({H}, 0.5, -3.0);
    t[p + "mixer.A_log"] = r({H}, 0.5, 1.0);
    t[p + "mixer.D"] = r({H}, 0.3, 1.0);
    t[p + "mixer.norm.weight"] = r({Di}, 0.1, 1.0);
    t[p + "mixer.out_proj.weight"] = r({D, Di}, 0.3);
  }
  t["backbone.norm_f.weight"] = r({D}, 0.1, 1.0);
  return t;
}

json hf_config(const TinyShape& s) {
  return {{"architectures", {"Mamba2ForCausalLM"}},
          {"model_type", "mamba2"},
          {"hidden_size", s.d_model},
          {"num_hidden_layers", s.n_layer},
          {"state_size", s.d_state},
          {"expand", s.expand},
          {"head_dim", s.head_dim},
          {"num_heads", s.heads()},
          {"n_groups", s.n_groups},
          {"conv_kernel", s.d_conv},
          {"chunk_size", 4},
          {"vocab_size", s.vocab},
          {"layer_norm_epsilon", 1e-5},
          {"use_conv_bias", true},
          {"use_bias", false},
          {"rms_norm", true},
          {"residual_in_fp32", true},
          {"time_step_rank", "auto"},
          {"tie_word_embeddings", true}};
}

Tensor ids_tensor(const std::vector<int64_t>& ids, int64_t B) {
  return Tensor::from_data(ids, {B, static_cast<int64_t>(ids.size()) / B});
}

class HfMamba2 : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ssm_hf_mamba2_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_text(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  // config.json + model.safetensors (our writer) + tokenizer.json.
  void write_model(const json& config, const std::map<std::string, Tensor>& tensors) const {
    write_text("config.json", config.dump(2));
    io::write_safetensors((dir_ / "model.safetensors").string(), tensors, {{"format", "pt"}});
    write_text("tokenizer.json", ssm::testing::byte_tokenizer().dump());
  }
  std::string dir() const { return dir_.string(); }
  fs::path dir_;
};

// Logits from tests/python/mamba2_ref.py for the same weights.
Tensor torch_logits(const std::map<std::string, Tensor>& tensors, const Tensor& ids,
                    int64_t n_groups) {
  std::map<std::string, Tensor> in;
  for (const auto& [k, v] : tensors) in[k] = v.to(DType::F64);
  in["ids"] = ids.to(DType::F64);
  in["n_groups"] = Tensor::scalar(static_cast<double>(n_groups), DType::F64);
  in["eps"] = Tensor::scalar(1e-5, DType::F64);
  return ssm::testing::run_torch("mamba2_ref.py", in).at("logits");
}

const std::vector<int64_t> kIds = {3, 200, 17, 255, 0, 42, 42, 9,   130, 77,
                                   5, 64,  1,  99,  8, 31, 2,  250, 11,  60};

}  // namespace

TEST_F(HfMamba2, ConfigFields) {
  const TinyShape s;
  json c = hf_config(s);
  c["layer_norm_epsilon"] = 1e-6;
  c["time_step_min"] = 0.002;
  c["time_step_limit"] = {0.0, 0.5};
  auto cfg = io::parse_mamba_config(c.dump(), "config.json");
  EXPECT_EQ(cfg.arch, "mamba2");
  EXPECT_EQ(cfg.d_model(), 8);
  EXPECT_EQ(cfg.n_layer, 2);
  EXPECT_EQ(cfg.vocab_size, 256);
  EXPECT_EQ(cfg.mamba2.d_state, 4);
  EXPECT_EQ(cfg.mamba2.head_dim, 4);
  EXPECT_EQ(cfg.mamba2.n_heads(), 4);
  EXPECT_EQ(cfg.mamba2.n_groups, 2);
  EXPECT_EQ(cfg.mamba2.d_conv, 4);
  EXPECT_EQ(cfg.mamba2.chunk_size, 4);
  EXPECT_EQ(cfg.mamba2.dt_min, 0.002);
  EXPECT_EQ(cfg.mamba2.dt_limit_max, 0.5);
  EXPECT_EQ(cfg.norm_eps, 1e-6);
  EXPECT_EQ(cfg.mamba2.norm_eps, 1e-6);
  EXPECT_TRUE(cfg.tie_embeddings);

  // transformers' defaults: untied head, 8 groups; num_heads follows from head_dim.
  c = {{"architectures", {"Mamba2ForCausalLM"}},
       {"hidden_size", 256},
       {"num_hidden_layers", 1},
       {"vocab_size", 100}};
  cfg = io::parse_mamba_config(c.dump(), "config.json");
  EXPECT_FALSE(cfg.tie_embeddings);
  EXPECT_EQ(cfg.mamba2.n_groups, 8);
  EXPECT_EQ(cfg.mamba2.d_state, 128);
  EXPECT_EQ(cfg.mamba2.n_heads(), 8);  // 512 / 64
  EXPECT_EQ(cfg.mamba2.chunk_size, 256);

  // Python's json writes time_step_limit's infinity as a bare literal; other spellings too.
  for (const std::string inf : {"Infinity", "\"Infinity\"", "{\"__float__\": \"Infinity\"}"}) {
    const std::string text =
        "{\"model_type\": \"mamba2\", \"hidden_size\": 8, "
        "\"num_hidden_layers\": 1, \"vocab_size\": 16, \"head_dim\": 4, "
        "\"n_groups\": 1, \"name\": \"Infinity NaN\", "
        "\"time_step_limit\": [0.0, " +
        inf + "]}";
    cfg = io::parse_mamba_config(text, "config.json");
    EXPECT_TRUE(std::isinf(cfg.mamba2.dt_limit_max)) << inf;
    EXPECT_EQ(cfg.mamba2.n_heads(), 4);
  }
}

TEST_F(HfMamba2, MambaSsmConfig) {
  const json c = {{"d_model", 24},
                  {"d_intermediate", 0},
                  {"n_layer", 3},
                  {"vocab_size", 50277},
                  {"ssm_cfg",
                   {{"layer", "Mamba2"},
                    {"d_state", 16},
                    {"headdim", 12},
                    {"ngroups", 2},
                    {"expand", 2},
                    {"d_conv", 3},
                    {"chunk_size", 64},
                    {"A_init_range", {2, 8}}}},
                  {"attn_layer_idx", json::array()},
                  {"attn_cfg", json::object()},
                  {"rms_norm", true},
                  {"residual_in_fp32", true},
                  {"fused_add_norm", true},
                  {"pad_vocab_size_multiple", 16},
                  {"tie_embeddings", true}};
  const auto cfg = io::parse_mamba_config(c.dump(), "config.json");
  EXPECT_EQ(cfg.arch, "mamba2");
  EXPECT_EQ(cfg.vocab_size, 50288);  // padded up to a multiple of 16
  EXPECT_EQ(cfg.d_model(), 24);
  EXPECT_EQ(cfg.n_layer, 3);
  EXPECT_EQ(cfg.mamba2.d_state, 16);
  EXPECT_EQ(cfg.mamba2.head_dim, 12);
  EXPECT_EQ(cfg.mamba2.n_heads(), 4);
  EXPECT_EQ(cfg.mamba2.n_groups, 2);
  EXPECT_EQ(cfg.mamba2.d_conv, 3);
  EXPECT_EQ(cfg.mamba2.chunk_size, 64);
  EXPECT_EQ(cfg.mamba2.A_init_min, 2);
  EXPECT_EQ(cfg.mamba2.A_init_max, 8);
  EXPECT_TRUE(cfg.tie_embeddings);
  // Mamba-1 configs still parse as Mamba-1.
  const json m1 = {{"d_model", 8}, {"n_layer", 1}, {"vocab_size", 8}, {"ssm_cfg", json::object()}};
  EXPECT_EQ(io::parse_mamba_config(m1.dump(), "c").arch, "mamba1");
  EXPECT_EQ(io::parse_mamba_config(json({{"model_type", "mamba"},
                                         {"hidden_size", 8},
                                         {"num_hidden_layers", 1},
                                         {"vocab_size", 8}})
                                       .dump(),
                                   "c")
                .arch,
            "mamba1");
}

TEST_F(HfMamba2, ConfigErrors) {
  const TinyShape s;
  json c = hf_config(s);
  c["num_heads"] = 5;
  EXPECT_SSM_ERROR(io::parse_mamba_config(c.dump(), "config.json"), "config.json", "num_heads",
                   "head_dim", "5 · 4 = 20", "expand · hidden_size", "2 · 8 = 16");
  c = hf_config(s);
  c["use_bias"] = true;
  EXPECT_SSM_ERROR(io::parse_mamba_config(c.dump(), "config.json"), "config.json", "use_bias",
                   "not supported", "expected false");
  c = hf_config(s);
  c["n_groups"] = 3;
  EXPECT_SSM_ERROR(io::parse_mamba_config(c.dump(), "config.json"), "n_groups 3", "heads 4");
  c = hf_config(s);
  c["model_type"] = "mamba";
  EXPECT_SSM_ERROR(io::parse_mamba_config(c.dump(), "config.json"),
                   "architectures 'Mamba2ForCausalLM' (mamba2) contradicts model_type 'mamba'");
  c = hf_config(s);
  c["architectures"] = {"Mamba3ForCausalLM"};
  EXPECT_SSM_ERROR(io::parse_mamba_config(c.dump(), "config.json"), "config.json",
                   "unknown architecture 'Mamba3ForCausalLM'");
  c = hf_config(s);
  c["rms_norm"] = false;
  EXPECT_SSM_ERROR(io::parse_mamba_config(c.dump(), "config.json"), "rms_norm");
  c = hf_config(s);
  c["time_step_limit"] = {0.5, 0.1};
  EXPECT_SSM_ERROR(io::parse_mamba_config(c.dump(), "config.json"), "time step limit");
  json m = {{"d_model", 8},
            {"n_layer", 1},
            {"vocab_size", 8},
            {"d_intermediate", 32},
            {"ssm_cfg", {{"layer", "Mamba2"}, {"headdim", 4}}}};
  EXPECT_SSM_ERROR(io::parse_mamba_config(m.dump(), "c.json"), "d_intermediate", "32", "MLP");
  m.erase("d_intermediate");
  m["attn_layer_idx"] = {0};
  EXPECT_SSM_ERROR(io::parse_mamba_config(m.dump(), "c.json"), "attn_layer_idx", "attention");
  m.erase("attn_layer_idx");
  m["ssm_cfg"]["headdim"] = 64;  // 16 channels
  EXPECT_SSM_ERROR(io::parse_mamba_config(m.dump(), "c.json"), "headdim 64", "2 · 8 = 16");
}

TEST_F(HfMamba2, LoadedModelMatchesTorch) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  const TinyShape s;
  const auto tensors = hf_tensors(s, 1);
  write_model(hf_config(s), tensors);
  const Tensor ids = ids_tensor(kIds, 2);  // L = 10 > Q = 4: the chunked path
  const Tensor ref = torch_logits(tensors, ids, s.n_groups);
  const auto m64 = io::load_hf_mamba(dir(), DType::F64);
  EXPECT_EQ(m64->config.arch, "mamba2");
  EXPECT_LE(rel_error(m64->forward(ids), ref), 1e-10);
  const auto m32 = io::load_hf_mamba(dir(), DType::F32);
  EXPECT_LE(rel_error(m32->forward(ids), ref), 1e-5);
}

TEST_F(HfMamba2, OriginalMambaSsmLayoutWithPaddedVocab) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  TinyShape s;
  s.vocab = 32;  // 21 padded up to a multiple of 16
  s.n_layer = 1;
  s.n_groups = 1;
  const auto tensors = hf_tensors(s, 2, "backbone.embedding.weight");
  const json config = {{"d_model", s.d_model},
                       {"d_intermediate", 0},
                       {"n_layer", 1},
                       {"vocab_size", 21},
                       {"ssm_cfg",
                        {{"layer", "Mamba2"},
                         {"d_state", s.d_state},
                         {"headdim", s.head_dim},
                         {"ngroups", 1},
                         {"chunk_size", 4}}},
                       {"attn_layer_idx", json::array()},
                       {"rms_norm", true},
                       {"residual_in_fp32", true},
                       {"fused_add_norm", true},
                       {"pad_vocab_size_multiple", 16},
                       {"tie_embeddings", true}};
  write_model(config, tensors);
  const Tensor ids = ids_tensor({1, 20, 3, 7, 0, 19, 4, 4, 12, 2, 9}, 1);
  const auto m = io::load_hf_mamba(dir(), DType::F64);
  const Tensor logits = m->forward(ids);
  EXPECT_EQ(shape_str(logits.shape()), "(1, 11, 32)");
  EXPECT_LE(rel_error(logits, torch_logits(tensors, ids, 1)), 1e-10);
}

TEST_F(HfMamba2, WeightErrorsNameTheTensor) {
  const TinyShape s;
  auto tensors = hf_tensors(s, 3);
  Generator g(4);
  tensors["backbone.layers.1.mixer.in_proj.weight"] = randn({36, 8}, DType::F32, &g);
  write_model(hf_config(s), tensors);
  EXPECT_SSM_ERROR(io::load_hf_mamba(dir()), "backbone.layers.1.mixer.in_proj.weight",
                   "expected shape (52, 8)" /* 16 + 32 + 4 */, "got (36, 8)");
  tensors = hf_tensors(s, 3);
  tensors["backbone.layers.0.mixer.A_log"] = randn({4, 4}, DType::F32, &g);  // Mamba-1's shape
  write_model(hf_config(s), tensors);
  EXPECT_SSM_ERROR(io::load_hf_mamba(dir()), "backbone.layers.0.mixer.A_log", "expected shape (4)",
                   "got (4, 4)");
  tensors = hf_tensors(s, 3);
  tensors.erase("backbone.layers.0.mixer.dt_bias");
  tensors["backbone.layers.0.mixer.dt_proj.bias"] = randn({16}, DType::F32, &g);
  write_model(hf_config(s), tensors);
  EXPECT_SSM_ERROR(io::load_hf_mamba(dir()), "unexpected tensor",
                   "backbone.layers.0.mixer.dt_proj.bias");
  tensors.erase("backbone.layers.0.mixer.dt_proj.bias");
  write_model(hf_config(s), tensors);
  EXPECT_SSM_ERROR(io::load_hf_mamba(dir()), "missing tensor 'backbone.layers.0.mixer.dt_bias'",
                   "(4)");
}

TEST_F(HfMamba2, GreedyEqualsArgmaxOfForwardRollout) {
  const TinyShape s;
  write_model(hf_config(s), hf_tensors(s, 5));
  const auto m = io::load_hf_mamba(dir(), DType::F64);
  const std::vector<int64_t> prompt = {72, 101, 108, 108, 111, 32};
  infer::GenerateOptions o;
  o.max_new_tokens = 8;
  o.sampling.temperature = 0;
  const auto r = infer::generate(*m, prompt, o);
  ASSERT_EQ(r.ids.size(), 8u);
  std::vector<int64_t> seq = prompt;
  for (int i = 0; i < 8; ++i) {
    const Tensor logits = m->forward(ids_tensor(seq, 1)).select(0, 0);
    const Tensor last = logits.select(0, logits.size(0) - 1);
    int64_t best = 0;
    for (int64_t v = 1; v < s.vocab; ++v)
      if (last.at({v}) > last.at({best})) best = v;
    seq.push_back(best);
  }
  EXPECT_EQ(std::vector<int64_t>(seq.begin() + 6, seq.end()), r.ids);
}

TEST_F(HfMamba2, CliGenerateEqualsLibraryGreedy) {
  const std::string cli = ssm::testing::cli_path();
  if (cli.empty() || !fs::exists(cli)) GTEST_SKIP() << "SSM_CLI not set (run through ctest)";
  const TinyShape s;
  write_model(hf_config(s), hf_tensors(s, 6));
  // "Hello" is bytes 72 101 108 108 111 with this tokenizer.
  const auto m = io::load_hf_mamba(dir(), DType::F32);
  infer::GenerateOptions o;
  o.max_new_tokens = 7;
  o.sampling.temperature = 0;
  const auto expected = infer::generate(*m, {72, 101, 108, 108, 111}, o).ids;

  const auto r =
      ssm::testing::run_cli("generate " + dir() + " --prompt Hello -n 7 --temperature 0 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["ids"].get<std::vector<int64_t>>(), expected);
}
