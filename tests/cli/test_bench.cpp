// `ssm bench` at tiny sizes: every suite's --json object (fields, positive finite numbers, one
// line), the table mode, the PyTorch plumbing through a stand-in script (so no torch is needed
// and the test stays fast), and bad options.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ssm/io/safetensors.h"
#include "ssm/nn/mamba_lm.h"
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
      fs::temp_directory_path() / ("ssm_bench_err_" + std::to_string(::getpid()));
  const std::string cmd = ssm::testing::cli_path() + " " + args + " 2>" + err_file.string();
  CliResult r{};
  FILE* p = popen(cmd.c_str(), "r");
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

// Parses stdout as exactly one JSON object on one line.
json one_json_object(const CliResult& r) {
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  json j = json::parse(r.out, nullptr, false);
  EXPECT_TRUE(j.is_object()) << r.out;
  return j;
}

void expect_positive_finite(const json& v, const std::string& what) {
  ASSERT_TRUE(v.is_number()) << what << " is " << v.dump();
  const double x = v.get<double>();
  EXPECT_TRUE(std::isfinite(x) && x > 0) << what << " = " << x;
}

// {"mean", "std", "runs", "samples"} with `runs` positive finite samples.
void expect_stats(const json& s, int runs, const std::string& what) {
  ASSERT_TRUE(s.is_object()) << what << " is " << s.dump();
  expect_positive_finite(s["mean"], what + ".mean");
  EXPECT_TRUE(s["std"].is_number() && std::isfinite(s["std"].get<double>()) &&
              s["std"].get<double>() >= 0)
      << what << ".std = " << s["std"].dump();
  EXPECT_EQ(s["runs"].get<int>(), runs) << what;
  ASSERT_EQ(s["samples"].size(), static_cast<size_t>(runs)) << what;
  for (const auto& x : s["samples"]) expect_positive_finite(x, what + ".samples[]");
}

const char* kTinyLti = "bench lti --runs 5 --warmup 0 --batch 2 --channels 4 --state 4 --length 32";
const char* kTinyScan =
    "bench scan --runs 5 --warmup 0 --batch 1 --length 64 --d-inner 8 --scan-state 4 "
    "--heads 2 --head-dim 4 --ssd-state 8 --torch-chunk 16 --chunk 16";

// A stand-in for bench/torch_*.py run by /bin/sh: reports 2 ms per run and echoes the thread
// count it saw in its environment and arguments as the "torch version".
fs::path fake_torch_dir(const std::string& name, bool fail) {
  const fs::path dir =
      fs::temp_directory_path() / ("ssm_bench_fake_" + name + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string body = fail ? "echo '{\"error\": \"cannot import torch: fake\"}'; exit 3\n"
                                : "echo \"{\\\"torch_version\\\": "
                                  "\\\"fake-$OMP_NUM_THREADS-$OPENBLAS_NUM_THREADS-$2\\\", "
                                  "\\\"mean_ms\\\": 2.0, \\\"std_ms\\\": 0.5, \\\"runs\\\": 5, "
                                  "\\\"times_ms\\\": [1.5, 2, 2, 2, 2.5]}\"\n";
  for (const char* script : {"torch_lti.py", "torch_scan.py"}) std::ofstream(dir / script) << body;
  return dir;
}

}  // namespace

class Bench : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ssm::testing::cli_path().empty()) GTEST_SKIP() << "SSM_CLI not set (run through ctest)";
  }
};

TEST_F(Bench, LtiJsonHasEveryNumber) {
  const json j = one_json_object(run_cli(std::string(kTinyLti) + " --threads 2 --no-torch --json"));
  EXPECT_EQ(j["suite"], "lti");
  EXPECT_EQ(j["threads"].get<int>(), 2);
  EXPECT_EQ(j["sizes"]["L"].get<int>(), 32);
  EXPECT_FALSE(j["cpu"].get<std::string>().empty());
  EXPECT_FALSE(j["torch"]["available"].get<bool>());
  EXPECT_EQ(j["torch"]["reason"], "--no-torch");
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_EQ(j["results"][0]["name"], "s4d fwd+bwd");
  EXPECT_EQ(j["results"][1]["name"], "s4 fwd+bwd");
  for (const auto& r : j["results"]) {
    expect_stats(r["ssm_ms"], 5, r["name"].get<std::string>());
    EXPECT_TRUE(r["torch_ms"].is_null());
    EXPECT_TRUE(r["speedup"].is_null());
  }
}

TEST_F(Bench, ScanJsonHasEveryNumber) {
  const json j =
      one_json_object(run_cli(std::string(kTinyScan) + " --threads 1 --no-torch --json"));
  EXPECT_EQ(j["suite"], "scan");
  EXPECT_EQ(j["threads"].get<int>(), 1);
  EXPECT_EQ(j["sizes"]["ssd"]["chunk"].get<int>(), 16);
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_EQ(j["results"][0]["name"], "selective_scan fwd+bwd");
  EXPECT_EQ(j["results"][1]["name"], "ssd fwd+bwd");
  for (const auto& r : j["results"]) expect_stats(r["ssm_ms"], 5, r["name"].get<std::string>());
}

TEST_F(Bench, LmJsonHasTokensPerSecondAndBandwidth) {
  const json j = one_json_object(
      run_cli("bench lm --json --runs 5 --warmup 0 --n-layer 2 --d-model 32 --vocab 64 -p 16 "
              "-n 4 --threads 1,2 --bandwidth-mib 4"));
  EXPECT_EQ(j["suite"], "lm");
  const json& m = j["model"];
  EXPECT_EQ(m["source"], "random");
  EXPECT_EQ(m["n_layer"].get<int>(), 2);
  expect_positive_finite(m["params"], "params");
  EXPECT_EQ(m["weight_bytes"].get<int64_t>(), 4 * m["params"].get<int64_t>());
  ASSERT_EQ(j["bandwidth"].size(), 2u);
  for (const auto& b : j["bandwidth"])
    for (const char* k : {"copy_gbs", "triad_gbs", "read_gbs"}) expect_positive_finite(b[k], k);
  ASSERT_EQ(j["results"].size(), 4u);  // pp16, tg4 for each thread count
  const char* tests[] = {"pp16", "tg4", "pp16", "tg4"};
  const int threads[] = {1, 1, 2, 2};
  for (size_t i = 0; i < 4; ++i) {
    const json& r = j["results"][i];
    EXPECT_EQ(r["test"], tests[i]);
    EXPECT_EQ(r["threads"].get<int>(), threads[i]);
    expect_stats(r["tokens_per_s"], 5, tests[i]);
    if (i % 2 == 1) {
      expect_positive_finite(r["decode_gbs"], "decode_gbs");
      expect_positive_finite(r["bandwidth_fraction"], "bandwidth_fraction");
      expect_positive_finite(r["read_fraction"], "read_fraction");
      // decode GB/s is tokens/s × weight bytes, and the fraction is against the triad figure.
      EXPECT_NEAR(r["decode_gbs"].get<double>(),
                  r["tokens_per_s"]["mean"].get<double>() * m["weight_bytes"].get<double>() / 1e9,
                  1e-9 * r["decode_gbs"].get<double>());
      EXPECT_NEAR(r["bandwidth_fraction"].get<double>(),
                  r["decode_gbs"].get<double>() / j["bandwidth"][i / 2]["triad_gbs"].get<double>(),
                  1e-12);
      EXPECT_NEAR(r["read_fraction"].get<double>(),
                  r["decode_gbs"].get<double>() / j["bandwidth"][i / 2]["read_gbs"].get<double>(),
                  1e-12);
    }
  }
}

TEST_F(Bench, LmLoadsAHuggingFaceDirectory) {
  // A tiny random model in the Hugging Face layout: the bench reports its shape and size.
  ssm::nn::MambaLMConfig c;
  c.mixer.d_model = 16;
  c.mixer.d_state = 4;
  c.n_layer = 3;
  c.vocab_size = 40;
  ssm::Generator gen(5);
  ssm::nn::MambaLM model(c, gen);
  const fs::path hf = fs::temp_directory_path() / ("ssm_bench_hf_" + std::to_string(::getpid()));
  fs::create_directories(hf);
  ssm::io::write_safetensors((hf / "model.safetensors").string(), model.state_dict(),
                             {{"format", "pt"}});
  std::ofstream(hf / "config.json") << json({{"architectures", {"MambaForCausalLM"}},
                                             {"model_type", "mamba"},
                                             {"hidden_size", 16},
                                             {"num_hidden_layers", 3},
                                             {"state_size", 4},
                                             {"expand", 2},
                                             {"conv_kernel", 4},
                                             {"time_step_rank", "auto"},
                                             {"vocab_size", 40},
                                             {"layer_norm_epsilon", 1e-5},
                                             {"use_conv_bias", true},
                                             {"use_bias", false},
                                             {"tie_word_embeddings", true}})
                                           .dump();
  const json j =
      one_json_object(run_cli("bench lm --json --runs 5 --warmup 0 -p 8 -n 3 --threads 1 "
                              "--bandwidth-mib 4 --model " +
                              hf.string()));
  EXPECT_EQ(j["model"]["source"], hf.string());
  EXPECT_EQ(j["model"]["n_layer"].get<int>(), 3);
  EXPECT_EQ(j["model"]["vocab_size"].get<int>(), 40);
  EXPECT_EQ(j["model"]["params"].get<int64_t>(), model.num_parameters());
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_EQ(j["results"][0]["test"], "pp8");
  EXPECT_EQ(j["results"][1]["test"], "tg3");
  expect_stats(j["results"][1]["tokens_per_s"], 5, "tg3");
  fs::remove_all(hf);
}

TEST_F(Bench, TorchSideThroughItsScriptWithTheSameThreads) {
  const fs::path dir = fake_torch_dir("ok", false);
  const std::string torch = " --python /bin/sh --torch-script-dir " + dir.string();
  const json j = one_json_object(run_cli(std::string(kTinyLti) + " --threads 2 --json" + torch));
  EXPECT_TRUE(j["torch"]["available"].get<bool>()) << j["torch"].dump();
  // OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and the script's --threads argument are all 2.
  EXPECT_EQ(j["torch"]["version"], "fake-2-2-2");
  for (const auto& r : j["results"]) {
    expect_stats(r["torch_ms"], 5, "torch_ms");
    EXPECT_DOUBLE_EQ(r["torch_ms"]["mean"].get<double>(), 2.0);
    EXPECT_NEAR(r["speedup"].get<double>(), 2.0 / r["ssm_ms"]["mean"].get<double>(), 1e-12);
  }
  const CliResult table = run_cli(std::string(kTinyScan) + " --threads 1" + torch);
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("| op "), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("torch fake-1-1-1"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("2.00 ±   0.50"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("x |"), std::string::npos) << table.out;
  fs::remove_all(dir);
}

TEST_F(Bench, MissingTorchStillPrintsTheSsmSide) {
  const fs::path dir = fake_torch_dir("fail", true);
  const CliResult r = run_cli(std::string(kTinyLti) +
                              " --layers s4d --python /bin/sh --torch-script-dir " + dir.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("torch: unavailable (cannot import torch: fake)"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("| s4d fwd+bwd"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unavailable |"), std::string::npos) << r.out;
  const CliResult no_python =
      run_cli(std::string(kTinyLti) + " --layers s4d --json --python /nonexistent/python3");
  const json j = one_json_object(no_python);
  EXPECT_EQ(j["torch"]["reason"], "/nonexistent/python3 not found");
  fs::remove_all(dir);
}

TEST_F(Bench, BadOptionsFailWithOneLine) {
  const CliResult few = run_cli("bench lti --runs 3 --no-torch");
  EXPECT_NE(few.code, 0);
  const CliResult n0 = run_cli("bench lm -n 0 --n-layer 1 --d-model 8 --vocab 16");
  EXPECT_NE(n0.code, 0);
  EXPECT_EQ(std::count(n0.err.begin(), n0.err.end(), '\n'), 1) << n0.err;
  EXPECT_NE(n0.err.find("-n expected > 0, got 0"), std::string::npos) << n0.err;
  const CliResult odd = run_cli("bench lti --state 5 --no-torch");
  EXPECT_NE(odd.code, 0);
  EXPECT_NE(odd.err.find("--state expected even"), std::string::npos) << odd.err;
  const CliResult op = run_cli("bench scan --ops scan2 --no-torch");
  EXPECT_NE(op.code, 0);
  EXPECT_NE(op.err.find("unknown op 'scan2'"), std::string::npos) << op.err;
}
