// The ssm command-line tool as a user runs it: exit codes, one-line errors, --json output.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "ssm/data/sequential_image.h"
#include "support/testing.h"

namespace fs = std::filesystem;

namespace {

struct CliResult {
  int code;
  std::string out, err;
};

// Runs `ssm ARGS` through the shell; `env` (e.g. "SSM_NUM_THREADS=3") prefixes the command.
CliResult run_cli(const std::string& args, const std::string& env = "") {
  const std::string cli = ssm::testing::cli_path();
  const fs::path err_file =
      fs::temp_directory_path() / ("ssm_cli_err_" + std::to_string(::getpid()));
  const std::string cmd = env + " " + cli + " " + args + " 2>" + err_file.string();
  CliResult r{};
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::FILE* f = std::fopen(err_file.c_str(), "r");
  while (f && (n = fread(buf.data(), 1, buf.size(), f)) > 0) r.err.append(buf.data(), n);
  if (f) std::fclose(f);
  fs::remove(err_file);
  return r;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ssm::testing::cli_path().empty()) GTEST_SKIP() << "SSM_CLI not set (run through ctest)";
  }
};

TEST_F(Cli, VersionAndInfoJson) {
  CliResult v = run_cli("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("ssm "), std::string::npos);
  CliResult i = run_cli("info --json");
  ASSERT_EQ(i.code, 0) << i.err;
  auto j = nlohmann::json::parse(i.out);
  EXPECT_GE(j["threads"].get<int>(), 1);
  EXPECT_NE(j["blas"].get<std::string>().find("OpenBLAS"), std::string::npos);
  EXPECT_EQ(count_lines(i.out), 1);
}

TEST_F(Cli, ErrorsAreOneLineWithNonZeroExit) {
  const fs::path cfg = fs::temp_directory_path() / "ssm_cli_bad.toml";
  {
    std::FILE* f = std::fopen(cfg.c_str(), "w");
    std::fputs("[train]\nlr = -1\n", f);
    std::fclose(f);
  }
  CliResult r = run_cli("train " + cfg.string() + " --out " +
                        (fs::temp_directory_path() / "ssm_cli_bad_run").string());
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("train.lr"), std::string::npos) << r.err;
  CliResult m = run_cli("train /nonexistent/config.toml");
  EXPECT_NE(m.code, 0);
  EXPECT_NE(m.err.find("/nonexistent/config.toml"), std::string::npos);
  // Parse errors are one line too, naming the option and what it expected.
  for (const char* args : {"--threads 0 info", "--threads two info", "eval"}) {
    CliResult t = run_cli(args);
    EXPECT_NE(t.code, 0) << args;
    EXPECT_EQ(count_lines(t.err), 1) << args << ": " << t.err;
  }
  CliResult t = run_cli("--threads 0 info");
  EXPECT_NE(t.err.find("--threads"), std::string::npos) << t.err;
  EXPECT_NE(t.err.find("expected a positive integer, got '0'"), std::string::npos) << t.err;
  CliResult u = run_cli("info --bogus");
  EXPECT_NE(u.code, 0);
  EXPECT_EQ(count_lines(u.err), 1) << u.err;
  EXPECT_NE(u.err.find("--bogus"), std::string::npos) << u.err;
  CliResult e = run_cli("info", "SSM_NUM_THREADS=abc");
  EXPECT_NE(e.code, 0);
  EXPECT_EQ(count_lines(e.err), 1) << e.err;
  EXPECT_NE(e.err.find("SSM_NUM_THREADS"), std::string::npos) << e.err;
  fs::remove(cfg);
}

TEST_F(Cli, ThreadCountFromEnvironmentAndFlag) {
  CliResult env = run_cli("info --json", "SSM_NUM_THREADS=3");
  ASSERT_EQ(env.code, 0) << env.err;
  EXPECT_EQ(nlohmann::json::parse(env.out)["threads"].get<int>(), 3);
  // The flag wins over the environment.
  CliResult flag = run_cli("--threads 1 info --json", "SSM_NUM_THREADS=3");
  ASSERT_EQ(flag.code, 0) << flag.err;
  EXPECT_EQ(nlohmann::json::parse(flag.out)["threads"].get<int>(), 1);
}

TEST_F(Cli, TrainThenEvalConvAndStepModesAgree) {
  if (!fs::exists(std::string(ssm::data::kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const fs::path run = fs::temp_directory_path() / ("ssm_cli_run_" + std::to_string(::getpid()));
  fs::remove_all(run);
  const std::string cfg = std::string(SSM_SOURCE_DIR) + "/configs/sfmnist-s4d.toml";
  CliResult t = run_cli("train " + cfg + " --out " + run.string() +
                        " --set model.d_model=8 --set model.n_layers=1 --set model.d_state=4"
                        " --set data.train_limit=32 --set data.val_size=16 --set data.test_limit=24"
                        " --set train.batch_size=8 --set train.warmup_steps=1 --json");
  ASSERT_EQ(t.code, 0) << t.err;
  auto tj = nlohmann::json::parse(t.out);
  EXPECT_EQ(tj["steps"].get<int>(), 4);
  EXPECT_NE(t.err.find("samples/s"), std::string::npos) << "progress line missing";
  EXPECT_TRUE(fs::exists(run / "metrics.jsonl"));
  CliResult conv = run_cli("eval " + run.string() + " --mode conv --json");
  CliResult step = run_cli("eval " + run.string() + " --mode step --json");
  ASSERT_EQ(conv.code, 0) << conv.err;
  ASSERT_EQ(step.code, 0) << step.err;
  auto cj = nlohmann::json::parse(conv.out), sj = nlohmann::json::parse(step.out);
  EXPECT_EQ(cj["split"], "test");
  EXPECT_EQ(cj["samples"].get<int>(), 24);
  EXPECT_GE(cj["accuracy"].get<double>(), 0.0);
  EXPECT_LE(cj["accuracy"].get<double>(), 1.0);
  // The recurrence must give the same predictions as the convolution.
  EXPECT_EQ(cj["accuracy"].get<double>(), sj["accuracy"].get<double>());
  EXPECT_NEAR(cj["loss"].get<double>(), sj["loss"].get<double>(), 1e-4);
  EXPECT_NEAR(cj["loss"].get<double>(), tj["test"]["loss"].get<double>(), 1e-6);
  fs::remove_all(run);
}
