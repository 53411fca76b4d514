// The ssm CLI on language models: `ssm train` / `ssm eval` on token tasks, `ssm generate` and
// `ssm perplexity` on a byte-level run and on a Hugging Face directory, and their errors.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ssm/core/cuda.h"
#include "ssm/infer/perplexity.h"
#include "ssm/io/safetensors.h"
#include "support/testing.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct CliResult {
  int code;
  std::string out, err;
};

CliResult run_cli(const std::string& args) {
  const fs::path err_file =
      fs::temp_directory_path() / ("ssm_cli_lm_err_" + std::to_string(::getpid()));
  // One thread: the models are tiny, and OpenMP barriers on a loaded machine cost more.
  const std::string cmd =
      ssm::testing::cli_path() + " --threads 1 " + args + " 2>" + err_file.string();
  CliResult r{};
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream f(err_file);
  r.err.assign(std::istreambuf_iterator<char>(f), {});
  fs::remove(err_file);
  return r;
}

int count_lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Words from a small set: a text a tiny model learns something of in a few steps.
std::string word_text(int words, uint64_t seed) {
  const char* w[] = {"the ", "cat ", "sat ", "on ", "a ", "mat.\n"};
  ssm::Generator g(seed);
  std::string s;
  for (int i = 0; i < words; ++i) s += w[g.below(6)];
  return s;
}

class CliLm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ssm::testing::cli_path().empty()) GTEST_SKIP() << "SSM_CLI not set (run through ctest)";
    dir_ = fs::temp_directory_path() /
           ("ssm_cli_lm_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Trains a tiny byte-level model on a word text; returns the run directory.
  fs::path train_text_run() {
    write_file(dir_ / "train.txt", word_text(2000, 1));
    write_file(dir_ / "lm.toml",
               "[model]\narch = \"mamba1\"\nd_model = 16\nd_state = 4\nn_layers = 1\n"
               "[data]\ndataset = \"text\"\nseq_len = 32\n"
               "[train]\nbatch_size = 16\nmax_steps = 20\nlr = 0.01\nssm_lr = 0.01\n");
    const fs::path run = dir_ / "run";
    const CliResult t = run_cli("train " + (dir_ / "lm.toml").string() + " --out " + run.string() +
                                " --set data.path=" + (dir_ / "train.txt").string() + " --json");
    EXPECT_EQ(t.code, 0) << t.err;
    return run;
  }

  fs::path dir_;
};

}  // namespace

TEST_F(CliLm, TrainAndEvalATokenTask) {
  write_file(dir_ / "ih.toml",
             "[model]\narch = \"mamba1\"\nd_model = 16\nd_state = 4\nn_layers = 2\n"
             "[data]\ndataset = \"induction-heads\"\nseq_len = 32\nvocab_size = 8\n"
             "train_size = 128\nval_size = 16\ntest_size = 24\n"
             "[train]\nbatch_size = 16\nlr = 0.01\nssm_lr = 0.01\n");
  const fs::path run = dir_ / "ih";
  const CliResult t =
      run_cli("train " + (dir_ / "ih.toml").string() + " --out " + run.string() + " --json");
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_EQ(count_lines(t.out), 1);
  const json tj = json::parse(t.out);
  EXPECT_EQ(tj["steps"].get<int>(), 8);
  EXPECT_TRUE(tj["test"].contains("example_accuracy"));
  EXPECT_EQ(tj["test"]["samples"].get<int>(), 24);
  EXPECT_NE(t.err.find("samples/s"), std::string::npos) << "progress line missing";
  EXPECT_TRUE(fs::exists(run / "metrics.jsonl"));
  EXPECT_TRUE(fs::exists(run / "curves.svg"));

  const CliResult conv = run_cli("eval " + run.string() + " --json");
  const CliResult step = run_cli("eval " + run.string() + " --mode step --json");
  ASSERT_EQ(conv.code, 0) << conv.err;
  ASSERT_EQ(step.code, 0) << step.err;
  const json cj = json::parse(conv.out), sj = json::parse(step.out);
  EXPECT_NEAR(cj["loss"].get<double>(), tj["test"]["loss"].get<double>(), 1e-6);
  EXPECT_EQ(cj["accuracy"].get<double>(), sj["accuracy"].get<double>());
  EXPECT_NEAR(cj["loss"].get<double>(), sj["loss"].get<double>(), 1e-4);
  // Induction heads: one target per example, so token and example accuracy agree.
  EXPECT_EQ(cj["accuracy"].get<double>(), cj["example_accuracy"].get<double>());
  // Evaluation at another length than training.
  const CliResult longer =
      run_cli("eval " + run.string() + " --set data.eval_length=512 --limit 8 --json");
  ASSERT_EQ(longer.code, 0) << longer.err;
  EXPECT_EQ(json::parse(longer.out)["samples"].get<int>(), 8);
  const CliResult bad = run_cli("eval " + run.string() + " --set data.eval_length=2");
  EXPECT_NE(bad.code, 0);
  EXPECT_EQ(count_lines(bad.err), 1) << bad.err;
  EXPECT_NE(bad.err.find("data.seq_len"), std::string::npos) << bad.err;
}

TEST_F(CliLm, GenerateAndPerplexityOnATextRun) {
  const fs::path run = train_text_run();
  ASSERT_TRUE(fs::exists(run / "checkpoint.safetensors"));
  const CliResult e = run_cli("eval " + run.string() + " --split val --json");
  ASSERT_EQ(e.code, 0) << e.err;
  const json ej = json::parse(e.out);
  EXPECT_NEAR(ej["bpc"].get<double>(), ej["loss"].get<double>() / std::log(2.0), 1e-9);

  const CliResult g =
      run_cli("generate " + run.string() + " --prompt 'the c' -n 40 --temperature 0 --json");
  ASSERT_EQ(g.code, 0) << g.err;
  const json gj = json::parse(g.out);
  EXPECT_EQ(gj["ids"].size(), 40u);
  for (const auto& id : gj["ids"]) EXPECT_LT(id.get<int>(), 256);
  // Streaming writes the prompt, then the generated bytes raw, then a newline.
  const CliResult s =
      run_cli("generate " + run.string() + " --prompt 'the c' -n 40 --temperature 0");
  ASSERT_EQ(s.code, 0) << s.err;
  ASSERT_EQ(s.out.size(), 5u + 40u + 1u);
  EXPECT_EQ(s.out.substr(0, 5), "the c");
  std::string ids_as_bytes;
  for (const auto& id : gj["ids"]) ids_as_bytes.push_back(static_cast<char>(id.get<int>()));
  EXPECT_EQ(s.out.substr(5, 40), ids_as_bytes);

  write_file(dir_ / "held_out.txt", word_text(200, 9));
  const CliResult p = run_cli("perplexity " + run.string() + " " +
                              (dir_ / "held_out.txt").string() + " --ctx 64 --json");
  ASSERT_EQ(p.code, 0) << p.err;
  EXPECT_EQ(count_lines(p.out), 1);
  const json pj = json::parse(p.out);
  const std::string text = word_text(200, 9);
  const auto T = static_cast<int64_t>(text.size());
  int64_t expected = (T / 64) * 63 + std::max<int64_t>(T % 64 - 1, 0);
  EXPECT_EQ(pj["tokens"].get<int64_t>(), expected);
  // Some structure was learnt: well under the 256 of uniform bytes.
  EXPECT_GT(pj["perplexity"].get<double>(), 1.0);
  EXPECT_LT(pj["perplexity"].get<double>(), 64.0);
  EXPECT_NEAR(std::log(pj["perplexity"].get<double>()), pj["mean_nll"].get<double>(), 1e-9);
}

TEST_F(CliLm, PerplexityOnAHuggingFaceDirectoryMatchesTheLibrary) {
  // A tiny random model saved in the Hugging Face layout, with a tokenizer.json whose tokens
  // are single bytes (id = byte), so the CLI's tokens are known here.
  ssm::nn::MambaLMConfig c;
  c.mixer.d_model = 8;
  c.mixer.d_state = 4;
  c.n_layer = 1;
  c.vocab_size = 256;
  ssm::Generator gen(3);
  ssm::nn::MambaLM model(c, gen);
  const fs::path hf = dir_ / "hf";
  fs::create_directories(hf);
  ssm::io::write_safetensors((hf / "model.safetensors").string(), model.state_dict(),
                             {{"format", "pt"}});
  write_file(hf / "config.json", json({{"architectures", {"MambaForCausalLM"}},
                                       {"model_type", "mamba"},
                                       {"hidden_size", 8},
                                       {"num_hidden_layers", 1},
                                       {"state_size", 4},
                                       {"expand", 2},
                                       {"conv_kernel", 4},
                                       {"time_step_rank", "auto"},
                                       {"vocab_size", 256},
                                       {"layer_norm_epsilon", 1e-5},
                                       {"use_conv_bias", true},
                                       {"use_bias", false},
                                       {"tie_word_embeddings", true}})
                                     .dump());
  // Only letters and spaces in the text: their GPT-2 byte spelling is the character itself.
  json vocab = json::object();
  for (int b = 0; b < 256; ++b)
    if (b == ' ')
      vocab["Ġ"] = b;
    else if (std::isalpha(b))
      vocab[std::string(1, static_cast<char>(b))] = b;
  write_file(hf / "tokenizer.json",
             json({{"version", "1.0"},
                   {"added_tokens", json::array()},
                   {"normalizer", nullptr},
                   {"pre_tokenizer",
                    {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
                   {"post_processor", nullptr},
                   {"decoder", {{"type", "ByteLevel"}}},
                   {"model",
                    {{"type", "BPE"},
                     {"dropout", nullptr},
                     {"unk_token", nullptr},
                     {"fuse_unk", false},
                     {"vocab", vocab},
                     {"merges", json::array()}}}})
                 .dump());
  const std::string text = "the cat sat on a mat and the dog sat on a log";
  write_file(dir_ / "t.txt", text);
  const CliResult p =
      run_cli("perplexity " + hf.string() + " " + (dir_ / "t.txt").string() + " --ctx 16 --json");
  ASSERT_EQ(p.code, 0) << p.err;
  const json pj = json::parse(p.out);
  const std::vector<int64_t> ids(text.begin(), text.end());
  const ssm::infer::PerplexityResult want = ssm::infer::perplexity(model, ids, 16);
  EXPECT_EQ(pj["tokens"].get<int64_t>(), want.tokens);
  EXPECT_NEAR(pj["perplexity"].get<double>(), want.perplexity, 1e-9 * want.perplexity);
}

TEST_F(CliLm, PerplexityErrorsAreOneLine) {
  const fs::path run = train_text_run();
  write_file(dir_ / "short.txt", "only twenty bytes!!!");
  auto expect_error = [](const CliResult& r, const std::string& fragment) {
    EXPECT_NE(r.code, 0);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
  };
  expect_error(run_cli("perplexity " + run.string() + " " + (dir_ / "missing.txt").string()),
               "missing.txt");
  expect_error(
      run_cli("perplexity " + run.string() + " " + (dir_ / "short.txt").string() + " --ctx 1"),
      "--ctx");
  expect_error(
      run_cli("perplexity " + run.string() + " " + (dir_ / "short.txt").string() + " --ctx 64"),
      "20 tokens");
  expect_error(
      run_cli("perplexity " + (dir_ / "nope").string() + " " + (dir_ / "short.txt").string()),
      "nope");
  // Without --ctx a short text is one window.
  const CliResult whole =
      run_cli("perplexity " + run.string() + " " + (dir_ / "short.txt").string() + " --json");
  ASSERT_EQ(whole.code, 0) << whole.err;
  EXPECT_EQ(json::parse(whole.out)["tokens"].get<int>(), 19);
  // A run of a synthetic task has no text to read.
  expect_error(run_cli("generate " + (dir_ / "nope").string() + " --prompt x"), "nope");
  // --device: cpu or cuda; cuda where there is none says so (on a GPU machine it runs).
  expect_error(run_cli("generate " + run.string() + " --prompt x --device tpu"), "--device");
  if (!ssm::cuda::available()) {
    expect_error(run_cli("generate " + run.string() + " --prompt x --device cuda"), "cuda");
    expect_error(run_cli("perplexity " + run.string() + " " + (dir_ / "short.txt").string() +
                         " --device cuda"),
                 "cuda");
    expect_error(run_cli("eval " + run.string() + " --device cuda"), "train.device");
  }
  const CliResult on_cpu = run_cli("perplexity " + run.string() + " " +
                                   (dir_ / "short.txt").string() + " --device cpu --json");
  ASSERT_EQ(on_cpu.code, 0) << on_cpu.err;
  EXPECT_EQ(json::parse(on_cpu.out)["perplexity"], json::parse(whole.out)["perplexity"]);
}
