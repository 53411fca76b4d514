// `ssm tokenize TOKENIZER_JSON "text"`: token ids of a text with a Hugging Face tokenizer.json
// (byte-level BPE); `--decode "1 2 3"` turns ids back into text.
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "ssm/core/error.h"
#include "ssm/io/tokenizer.h"

namespace ssm::cli {

namespace {

struct TokenizeOptions {
  std::string tokenizer_path;
  std::string text;
  std::string file;
  bool decode = false;
  bool json = false;
  bool skip_special = false;
};

// Ids separated by spaces and/or commas ("1 2 3", "[1, 2, 3]").
std::vector<int64_t> parse_ids(const std::string& text) {
  std::vector<int64_t> ids;
  std::string token;
  const auto flush = [&] {
    if (token.empty()) return;
    size_t used = 0;
    int64_t id = -1;
    try {
      id = std::stoll(token, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    SSM_CHECK(
        used == token.size() && id >= 0,
        "tokenize --decode: '{}' is not a token id (expected integers >= 0 such as \"1 2 3\")",
        token);
    ids.push_back(id);
    token.clear();
  };
  for (char c : text) {
    if (c == ' ' || c == ',' || c == '\t' || c == '\n' || c == '\r' || c == '[' || c == ']')
      flush();
    else
      token.push_back(c);
  }
  flush();
  return ids;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SSM_CHECK(in.good(), "tokenize --file: cannot open '{}'", path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

void register_tokenize(CLI::App& app, GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "tokenize", "Token ids of a text with a Hugging Face tokenizer.json (byte-level BPE)");
  auto opt = std::make_shared<TokenizeOptions>();
  cmd->add_option("tokenizer", opt->tokenizer_path, "Path to tokenizer.json")->required();
  cmd->add_option("text", opt->text, "Text to encode (with --decode: ids, e.g. \"1 2 3\")");
  cmd->add_option("--file", opt->file, "Read the text (or the ids) from this file instead");
  cmd->add_flag("--decode", opt->decode, "Decode ids into text instead of encoding");
  cmd->add_flag("--skip-special", opt->skip_special, "With --decode: leave out special tokens");
  cmd->add_flag("--json", opt->json, "Print one JSON object on stdout");
  cmd->callback([&g, opt] {
    apply_globals(g);
    SSM_CHECK(opt->file.empty() || opt->text.empty(),
              "tokenize: give the text either as an argument or with --file, not both");
    const std::string input = opt->file.empty() ? opt->text : read_file(opt->file);
    const auto tokenizer = io::Tokenizer::from_file(opt->tokenizer_path);
    if (opt->decode) {
      const std::string text = tokenizer.decode(parse_ids(input), opt->skip_special);
      if (opt->json) {
        // Bytes that are not UTF-8 cannot be JSON strings: they become U+FFFD there only.
        const nlohmann::json j = {{"text", text}};
        std::printf("%s\n",
                    j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      } else {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fputc('\n', stdout);
      }
      return;
    }
    const std::vector<int64_t> ids = tokenizer.encode(input);
    if (opt->json) {
      std::printf("%s\n", nlohmann::json({{"ids", ids}}).dump().c_str());
      return;
    }
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) line.push_back(' ');
      line += std::to_string(ids[i]);
    }
    std::printf("%s\n", line.c_str());
  });
}

}  // namespace ssm::cli
