// `ssm data listops --out DIR [--seed S]` as a user runs it: the three split files at full LRA
// size (96,000 / 2,000 / 2,000; about 3 s per run), their TSV format, the same bytes for the
// same seed, agreement with the library generator, and a one-line error for a bad --out.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "ssm/data/listops.h"
#include "ssm/data/listops_dataset.h"
#include "support/testing.h"

namespace fs = std::filesystem;
using namespace ssm::data;

namespace {

struct CliResult {
  int code;
  std::string out, err;
};

CliResult run_cli(const std::string& args) {
  const std::string cli = ssm::testing::cli_path();
  const fs::path err_file =
      fs::temp_directory_path() / ("ssm_cli_data_err_" + std::to_string(::getpid()));
  const std::string cmd = cli + " " + args + " 2>" + err_file.string();
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

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Byte-for-byte equality, streamed (the train split is about 240 MB).
bool same_bytes(const std::string& a, const std::string& b) {
  if (fs::file_size(a) != fs::file_size(b)) return false;
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  std::vector<char> ba(1 << 20), bb(1 << 20);
  while (fa && fb) {
    fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
    fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    if (fa.gcount() != fb.gcount() || !std::equal(ba.begin(), ba.begin() + fa.gcount(), bb.begin()))
      return false;
  }
  return true;
}

size_t count_newlines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf(1 << 20);
  size_t n = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    n += static_cast<size_t>(std::count(buf.begin(), buf.begin() + in.gcount(), '\n'));
  }
  return n;
}

// The first `n` examples of a split file (after its header).
std::vector<ListOpsExample> first_examples(const std::string& path, size_t n) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  std::vector<ListOpsExample> out;
  while (out.size() < n && std::getline(in, line)) {
    const size_t tab = line.find('\t');
    if (tab == std::string::npos) break;
    out.push_back({listops_from_text(line.substr(0, tab)), std::stoll(line.substr(tab + 1))});
  }
  return out;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("ssm_cli_data_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

// Checks every line of a split file: the header, then `expression<TAB>digit` with the
// expression in `[MAX 2 9 ]` tokens (single spaces, no parentheses) whose value is the digit.
// Returns the number of examples.
size_t check_tsv(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  EXPECT_TRUE(std::getline(in, line)) << path;
  EXPECT_EQ(line, "Source\tTarget") << path;
  size_t examples = 0, bad = 0;
  while (std::getline(in, line)) {
    ++examples;
    const size_t tab = line.find('\t');
    const bool ok_shape = tab != std::string::npos &&
                          line.find('\t', tab + 1) == std::string::npos && tab + 2 == line.size() &&
                          line[tab + 1] >= '0' && line[tab + 1] <= '9';
    if (!ok_shape) {
      if (bad++ == 0) ADD_FAILURE() << path << " line " << examples + 1 << ": " << line;
      continue;
    }
    const std::string source = line.substr(0, tab);
    const auto tokens = listops_from_text(source);
    // Round trip through the token ids gives the same text: canonical `[OP a b ]` spacing.
    const bool ok = listops_to_text(tokens) == source && source.front() == '[' &&
                    source.find('(') == std::string::npos && tokens.size() > 500 &&
                    tokens.size() < 2000 && evaluate_listops(tokens) == line[tab + 1] - '0';
    if (!ok && bad++ == 0) ADD_FAILURE() << path << " line " << examples + 1 << ": " << source;
  }
  EXPECT_EQ(bad, 0u) << path;
  return examples;
}

}  // namespace

class CliData : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ssm::testing::cli_path().empty()) GTEST_SKIP() << "SSM_CLI not set (run through ctest)";
  }
};

TEST_F(CliData, ListOpsWritesTheThreeSplitsDeterministically) {
  const fs::path a = fresh_dir("a"), b = fresh_dir("b");
  CliResult ra = run_cli("data listops --out " + a.string() + " --seed 11");
  ASSERT_EQ(ra.code, 0) << ra.err;
  // stdout: the train, val and test paths, one a line, inside --out.
  const auto paths = lines_of(ra.out);
  ASSERT_EQ(paths.size(), 3u) << ra.out;
  const char* names[] = {"train.tsv", "val.tsv", "test.tsv"};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(fs::path(paths[i]).filename(), names[i]);
    EXPECT_EQ(fs::path(paths[i]).parent_path().parent_path(), a);
    ASSERT_TRUE(fs::is_regular_file(paths[i])) << paths[i];
    EXPECT_FALSE(fs::exists(paths[i] + ".tmp"));
  }
  EXPECT_EQ(check_tsv(paths[1]), 2000u);
  EXPECT_EQ(check_tsv(paths[2]), 2000u);
  EXPECT_EQ(count_newlines(paths[0]), 96001u);  // the header and 96,000 examples

  // The file's first examples are the library generator's for the same seed (examples are
  // drawn in a fixed order, so a smaller request is a prefix); another seed differs.
  ListOpsOptions small;
  small.num_train = 200;
  small.num_val = small.num_test = 0;
  small.seed = 11;
  const ListOpsSplits lib = generate_listops(small);
  const auto train = first_examples(paths[0], 200);
  ASSERT_EQ(train.size(), 200u);
  for (size_t i = 0; i < lib.train.size(); ++i) {
    ASSERT_EQ(train[i].tokens, lib.train[i].tokens) << "example " << i;
    ASSERT_EQ(train[i].target, lib.train[i].target) << "example " << i;
  }
  small.seed = 12;
  EXPECT_NE(generate_listops(small).train[0].tokens, train[0].tokens);

  // The same seed into another directory: the same bytes in every split.
  CliResult rb = run_cli("data listops --out " + b.string() + " --seed 11");
  ASSERT_EQ(rb.code, 0) << rb.err;
  const auto paths_b = lines_of(rb.out);
  ASSERT_EQ(paths_b.size(), 3u) << rb.out;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(fs::relative(paths_b[i], b), fs::relative(paths[i], a));
    EXPECT_TRUE(same_bytes(paths_b[i], paths[i])) << names[i] << " differs";
  }
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST_F(CliData, ListOpsBadOutIsOneLineError) {
  const fs::path dir = fresh_dir("bad");
  fs::create_directories(dir);
  const fs::path file = dir / "plain_file";
  std::ofstream(file) << "not a directory\n";
  CliResult r = run_cli("data listops --out " + (file / "sub").string());
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(file.string()), std::string::npos) << "names the path: " << r.err;
  // Missing --out is a usage error, also with a non-zero exit.
  CliResult m = run_cli("data listops --seed 1");
  EXPECT_NE(m.code, 0);
  EXPECT_NE(m.err.find("--out"), std::string::npos) << m.err;
  fs::remove_all(dir);
}
