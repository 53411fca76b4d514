#pragma once
// A language model with its tokenizer, from either kind of directory the CLI accepts:
//   - a Hugging Face model directory (config.json, weights, tokenizer.json): BPE tokens;
//   - a run directory of `ssm train` on data.dataset = "text": byte-level, token id = byte.
#include <memory>
#include <string>
#include <vector>

#include "ssm/io/tokenizer.h"
#include "ssm/nn/mamba_lm.h"

namespace ssm::cli {

class LanguageModel {
 public:
  // `command` names the subcommand in errors; the weights end up on `device`.
  static LanguageModel load(const std::string& dir, const char* command,
                            Device device = Device::CPU);

  std::vector<int64_t> encode(const std::string& text) const;
  std::string decode(const std::vector<int64_t>& ids) const;
  const nn::MambaLM& model() const { return *model_; }
  bool byte_level() const { return !tokenizer_; }

 private:
  static LanguageModel load_on_cpu(const std::string& dir, const char* command);

  std::shared_ptr<nn::MambaLM> model_;
  std::shared_ptr<io::Tokenizer> tokenizer_;  // null: bytes
};

}  // namespace ssm::cli
