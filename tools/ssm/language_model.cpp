#include "language_model.h"

#include <filesystem>

#include "ssm/core/error.h"
#include "ssm/io/hf_mamba.h"
#include "ssm/train/task_model.h"

namespace ssm::cli {

namespace fs = std::filesystem;

LanguageModel LanguageModel::load(const std::string& dir, const char* command, Device device) {
  LanguageModel lm = load_on_cpu(dir, command);
  if (device != Device::CPU) {
    const std::string& arch = lm.model_->config.arch;
    SSM_CHECK(arch == "mamba1" || arch == "mamba2",
              "{}: --device cuda runs mamba1 and mamba2 models; '{}' is {}, which has no CUDA "
              "kernels yet",
              command, dir, arch);
    lm.model_->to(device);
  }
  return lm;
}

LanguageModel LanguageModel::load_on_cpu(const std::string& dir, const char* command) {
  SSM_CHECK(fs::is_directory(dir), "{}: '{}' is not a directory", command, dir);
  LanguageModel lm;
  if (!fs::exists(fs::path(dir) / "config.json") && train::is_run_dir(dir)) {
    train::TrainedLanguageModel t = train::load_trained_language_model(dir);
    SSM_CHECK(t.config.data.dataset == "text",
              "{}: run '{}' was trained on {}, whose ids are not text; only byte-level text "
              "runs (data.dataset = \"text\") read and write text",
              command, dir, t.config.data.dataset);
    lm.model_ = std::move(t.model);
    return lm;
  }
  lm.tokenizer_ = std::make_shared<io::Tokenizer>(
      io::Tokenizer::from_file((fs::path(dir) / "tokenizer.json").string()));
  lm.model_ = io::load_hf_mamba(dir);
  return lm;
}

std::vector<int64_t> LanguageModel::encode(const std::string& text) const {
  if (tokenizer_) return tokenizer_->encode(text);
  return std::vector<int64_t>(reinterpret_cast<const unsigned char*>(text.data()),
                              reinterpret_cast<const unsigned char*>(text.data()) + text.size());
}

std::string LanguageModel::decode(const std::vector<int64_t>& ids) const {
  if (tokenizer_) return tokenizer_->decode(ids);
  std::string out;
  out.reserve(ids.size());
  for (int64_t id : ids) {
    SSM_CHECK(id >= 0 && id < 256, "decode: byte-level id {} is outside [0, 256)", id);
    out.push_back(static_cast<char>(id));
  }
  return out;
}

}  // namespace ssm::cli
