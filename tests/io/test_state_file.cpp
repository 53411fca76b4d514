// Decode state files: save + load round trip for Mamba-1, -2 and -3 LMs, generation continued
// from a loaded state equals generation over the whole text in one go, validation errors, and
// `ssm generate --save-state / --load-state`.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ssm/infer/generate.h"
#include "ssm/io/hf_mamba.h"
#include "ssm/io/safetensors.h"
#include "ssm/io/state_file.h"
#include "ssm/nn/mamba_lm.h"
#include "ssm/ops/elementwise.h"
#include "support/hf_fixtures.h"
#include "support/testing.h"

using namespace ssm;
using nlohmann::json;
using ssm::testing::rel_error;
namespace fs = std::filesystem;

namespace {

nn::MambaLMConfig tiny_config(const std::string& arch, int64_t n_layer = 2) {
  nn::MambaLMConfig c;
  c.arch = arch;
  c.n_layer = n_layer;
  c.vocab_size = 37;
  c.mixer.d_model = 8;
  c.mixer.d_state = 4;
  c.mixer.d_conv = 4;
  c.mamba2.d_model = 8;
  c.mamba2.d_state = 4;
  c.mamba2.head_dim = 4;
  c.mamba2.n_groups = 2;
  c.mamba2.chunk_size = 4;
  c.mamba3.d_model = 8;
  c.mamba3.d_state = 4;
  c.mamba3.head_dim = 4;
  c.mamba3.chunk_size = 4;
  return c;
}

// A model whose parameters are all moved off their init, so that the logits are far from ties.
std::unique_ptr<nn::MambaLM> tiny_model(const std::string& arch, DType dtype, uint64_t seed,
                                        int64_t n_layer = 2) {
  Generator g(seed);
  auto m = std::make_unique<nn::MambaLM>(tiny_config(arch, n_layer), g, dtype);
  Generator noise(seed + 1000);
  for (auto& p : m->named_parameters())
    p.tensor.copy_(add(p.tensor.detach(), mul_scalar(randn(p.tensor.shape(), dtype, &noise), 0.3)));
  return m;
}

class StateFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ssm_state_file_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

infer::GenerateOptions greedy(int64_t n) {
  infer::GenerateOptions o;
  o.max_new_tokens = n;
  o.sampling.temperature = 0;
  return o;
}

}  // namespace

TEST_F(StateFile, RoundTripIsExact) {
  for (const std::string arch : {"mamba1", "mamba2", "mamba3"}) {
    const auto m = tiny_model(arch, DType::F64, 1);
    const Tensor ids =
        Tensor::from_data(std::vector<int64_t>{1, 5, 9, 2, 30, 7, 7, 3, 11, 0}, {2, 5});
    auto [logits, cache] = m->prefill(ids);
    io::save_cache(path("s.safetensors"), cache, {{"arch", arch}, {"note", "x"}});
    EXPECT_FALSE(fs::exists(path("s.safetensors.tmp")));
    std::map<std::string, std::string> meta;
    const nn::MambaLMCache back = io::load_cache(path("s.safetensors"), *m, &meta);
    EXPECT_EQ(meta.at("note"), "x");
    EXPECT_EQ(meta.at("n_layer"), "2");
    ASSERT_EQ(back.layers.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      ASSERT_EQ(back.layers[i].tensors.size(), cache.layers[i].tensors.size()) << arch;
      for (const auto& [name, t] : cache.layers[i].tensors)
        EXPECT_EQ(rel_error(back.layers[i].at(name), t), 0.0) << arch << " " << name;
    }
    // A step from the loaded state equals a step from the original one.
    nn::MambaLMCache a = cache, b = back;
    const Tensor tok = Tensor::from_data(std::vector<int64_t>{4, 8}, {2});
    EXPECT_EQ(rel_error(m->step(tok, b), m->step(tok, a)), 0.0) << arch;
  }
}

TEST_F(StateFile, ContinuedGenerationEqualsOneGo) {
  for (const std::string arch : {"mamba1", "mamba2", "mamba3"})
    for (DType dt : {DType::F64, DType::F32}) {
      const auto m = tiny_model(arch, dt, 2);
      const std::vector<int64_t> a = {3, 14, 15, 9, 26, 5}, b = {35, 8, 9, 7, 9, 3, 2};
      // Generate after A, save, load, continue with B.
      const auto first = infer::generate(*m, a, greedy(5));
      io::save_cache(path("a.safetensors"), first.state,
                     {{"arch", arch}, {"last_token", std::to_string(first.ids.back())}});
      const nn::MambaLMCache loaded = io::load_cache(path("a.safetensors"), *m);
      infer::GenerateOptions cont = greedy(9);
      cont.start_state = &loaded;
      cont.start_token = first.ids.back();
      const auto second = infer::generate(*m, b, cont);
      // In one go: A + generated + B as one prompt.
      std::vector<int64_t> all = a;
      all.insert(all.end(), first.ids.begin(), first.ids.end());
      all.insert(all.end(), b.begin(), b.end());
      const auto one_go = infer::generate(*m, all, greedy(9));
      EXPECT_EQ(second.ids, one_go.ids) << arch << " " << dtype_name(dt);
      // The loaded state is not modified by generating from it.
      for (const auto& [name, t] : first.state.layers[0].tensors)
        EXPECT_EQ(rel_error(loaded.layers[0].at(name), t), 0.0) << arch << " " << name;
      // The logits after the continuation match the one-go forward (not only the argmax).
      if (dt == DType::F64) {
        nn::MambaLMCache s;
        for (const auto& l : loaded.layers) s.layers.push_back(l.clone());
        Tensor tok = Tensor::empty({1}, DType::I64);
        std::vector<int64_t> feed = {first.ids.back()};
        feed.insert(feed.end(), b.begin(), b.end());
        Tensor logits;
        for (int64_t id : feed) {
          tok.data<int64_t>()[0] = id;
          logits = m->step(tok, s);
        }
        const Tensor full =
            m->forward(Tensor::from_data(all, {1, static_cast<int64_t>(all.size())}));
        EXPECT_LE(rel_error(logits.select(0, 0), full.select(0, 0).select(0, all.size() - 1)),
                  1e-10)
            << arch;
      }
    }
}

TEST_F(StateFile, ValidationNamesWhatIsWrong) {
  const auto m2 = tiny_model("mamba2", DType::F32, 3);
  const auto cache = m2->init_cache(1);
  io::save_cache(path("m2.safetensors"), cache, {{"arch", "mamba2"}});
  // Another arch.
  const auto m1 = tiny_model("mamba1", DType::F32, 4);
  EXPECT_SSM_ERROR(io::load_cache(path("m2.safetensors"), *m1), "load_cache", "m2.safetensors",
                   "mamba2", "mamba1");
  // Another layer count.
  const auto deep = tiny_model("mamba2", DType::F32, 5, 3);
  EXPECT_SSM_ERROR(io::load_cache(path("m2.safetensors"), *deep), "has 2 layers",
                   "the model has 3");
  // Another state size: the tensor and both shapes.
  nn::MambaLMConfig c = tiny_config("mamba2");
  c.mamba2.d_state = 6;
  Generator g(6);
  const nn::MambaLM wide(c, g, DType::F32);
  EXPECT_SSM_ERROR(io::load_cache(path("m2.safetensors"), wide), "layers.0.conv_state",
                   "expected shape (1, 40, 3)" /* 16 + 2·2·6 */, "got (1, 32, 3)");
  // A missing and an unexpected tensor (the file written by hand).
  std::map<std::string, Tensor> t;
  for (size_t i = 0; i < cache.layers.size(); ++i)
    for (const auto& [name, v] : cache.layers[i].tensors)
      t["layers." + std::to_string(i) + "." + name] = v;
  const std::map<std::string, std::string> meta = {{"format", "ssm-decode-state"},
                                                   {"n_layer", "2"}};
  auto missing = t;
  missing.erase("layers.1.ssm_state");
  io::write_safetensors(path("missing.safetensors"), missing, meta);
  EXPECT_SSM_ERROR(io::load_cache(path("missing.safetensors"), *m2),
                   "missing tensor 'layers.1.ssm_state'", "(1, 4, 4, 4)");
  auto extra = t;
  extra["layers.0.angle"] = Tensor::zeros({1, 3});
  io::write_safetensors(path("extra.safetensors"), extra, meta);
  EXPECT_SSM_ERROR(io::load_cache(path("extra.safetensors"), *m2),
                   "unexpected tensor 'layers.0.angle'");
  // Not a state file at all.
  io::write_safetensors(path("weights.safetensors"), m2->state_dict());
  EXPECT_SSM_ERROR(io::load_cache(path("weights.safetensors"), *m2), "not a decode state file");
  EXPECT_SSM_ERROR(io::load_cache(path("nope.safetensors"), *m2), "nope.safetensors");
  // generate() refuses a start token without a state.
  infer::GenerateOptions o = greedy(2);
  o.start_token = 3;
  EXPECT_SSM_ERROR(infer::generate(*m2, {1}, o), "start_token 3", "start_state");
}

TEST_F(StateFile, CliSaveThenLoadEqualsOneGo) {
  const std::string cli = ssm::testing::cli_path();
  if (cli.empty() || !fs::exists(cli)) GTEST_SKIP() << "SSM_CLI not set (run through ctest)";
  for (const std::string arch : {"mamba1", "mamba2"}) {
    // A Hugging Face directory (byte tokenizer: id = byte) with the model's own weights.
    nn::MambaLMConfig c = tiny_config(arch);
    c.vocab_size = 256;
    Generator g(7);
    nn::MambaLM m(c, g, DType::F32);
    Generator noise(8);
    for (auto& p : m.named_parameters())
      p.tensor.copy_(
          add(p.tensor.detach(), mul_scalar(randn(p.tensor.shape(), DType::F32, &noise), 0.3)));
    const fs::path model_dir = dir_ / arch;
    fs::create_directories(model_dir);
    json config = {{"hidden_size", 8}, {"num_hidden_layers", 2}, {"state_size", 4},
                   {"conv_kernel", 4}, {"vocab_size", 256},      {"tie_word_embeddings", true},
                   {"expand", 2}};
    if (arch == "mamba2") {
      config["architectures"] = {"Mamba2ForCausalLM"};
      config["head_dim"] = 4;
      config["n_groups"] = 2;
      config["chunk_size"] = 4;
    }
    std::ofstream(model_dir / "config.json") << config.dump();
    std::ofstream(model_dir / "tokenizer.json") << ssm::testing::byte_tokenizer().dump();
    io::write_safetensors((model_dir / "model.safetensors").string(), m.state_dict());

    const std::string state = path(arch + ".state");
    auto r =
        ssm::testing::run_cli("generate " + model_dir.string() +
                              " --prompt Once -n 6 --temperature 0 --json --save-state " + state);
    ASSERT_EQ(r.code, 0) << r.err;
    const auto first = json::parse(r.out)["ids"].get<std::vector<int64_t>>();
    r = ssm::testing::run_cli("generate " + model_dir.string() +
                              " --prompt ' upon' -n 8 --temperature 0 --json --load-state " +
                              state);
    ASSERT_EQ(r.code, 0) << r.err;
    const auto second = json::parse(r.out)["ids"].get<std::vector<int64_t>>();

    const auto loaded = io::load_hf_mamba(model_dir.string(), DType::F32);
    std::vector<int64_t> all = {'O', 'n', 'c', 'e'};
    all.insert(all.end(), first.begin(), first.end());
    for (char ch : std::string(" upon")) all.push_back(ch);
    EXPECT_EQ(second, infer::generate(*loaded, all, greedy(8)).ids) << arch;

    // A state of the other arch is refused with the reason.
    if (arch == "mamba2") {
      r = ssm::testing::run_cli("generate " + model_dir.string() +
                                " --prompt x -n 2 --load-state " + path("mamba1.state"));
      EXPECT_NE(r.code, 0);
      EXPECT_NE(r.err.find("mamba1"), std::string::npos) << r.err;
    }
  }
}
