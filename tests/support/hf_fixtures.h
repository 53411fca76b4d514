#pragma once
// Helpers for tests that build Hugging Face model directories and run the `ssm` CLI on them:
// a byte-level tokenizer.json whose ids are the bytes, and a CLI runner.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "support/testing.h"

namespace ssm::testing {

// GPT-2's byte-level alphabet (byte b spelled by itself when printable, else 256 + rank).
inline std::string spell_byte(int b) {
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
inline nlohmann::json byte_tokenizer() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[spell_byte(b)] = b;
  return {{"version", "1.0"},
          {"added_tokens", nlohmann::json::array()},
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
            {"merges", nlohmann::json::array()}}}};
}

struct CliRun {
  int code;
  std::string out, err;
};

// Runs `$SSM_CLI args` through the shell; stdout and stderr captured separately.
inline CliRun run_cli(const std::string& args) {
  namespace fs = std::filesystem;
  const fs::path err_file =
      fs::temp_directory_path() / ("ssm_cli_err_" + std::to_string(::getpid()));
  FILE* p = popen((cli_path() + " " + args + " 2>" + err_file.string()).c_str(), "r");
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

}  // namespace ssm::testing
