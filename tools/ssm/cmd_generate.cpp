// `ssm generate MODEL_DIR --prompt "…"`: text from a Hugging Face Mamba model directory
// (config.json, model.safetensors[.index.json], tokenizer.json) or from the run directory of a
// byte-level `ssm train` text run (prompt bytes are the ids; output bytes are written raw),
// streamed token by token. --save-state / --load-state store the decode state in a file and
// continue from it later (the new prompt is appended after the saved text).
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.h"
#include "device_option.h"
#include "language_model.h"
#include "ssm/core/error.h"
#include "ssm/infer/generate.h"
#include "ssm/io/state_file.h"

namespace ssm::cli {

namespace {

struct GenerateCliOptions {
  std::string model_dir;
  std::string prompt;
  int64_t n = 64;
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  bool json = false;
  std::string save_state, load_state;
  std::string device = "cpu";
};

}  // namespace

void register_generate(CLI::App& app, GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "generate", "Generate text with a Mamba model (Hugging Face directory or byte-level run)");
  auto opt = std::make_shared<GenerateCliOptions>();
  cmd->add_option("model_dir", opt->model_dir,
                  "Directory with config.json, model.safetensors and tokenizer.json, or the run "
                  "directory of a byte-level `ssm train` text run")
      ->required();
  cmd->add_option("--prompt", opt->prompt, "Prompt text")->required();
  cmd->add_option("-n,--max-new-tokens", opt->n, "Number of tokens to generate");
  cmd->add_option("--temperature", opt->temperature, "0 = greedy");
  cmd->add_option("--top-k", opt->top_k, "Keep the k most likely tokens (0 = all)");
  cmd->add_option("--top-p", opt->top_p, "Nucleus sampling mass (1 = all)");
  cmd->add_option("--seed", opt->seed, "Sampling seed");
  cmd->add_flag("--json", opt->json, "Print one JSON object on stdout instead of streaming");
  add_device_option(cmd, opt->device);
  cmd->add_option("--save-state", opt->save_state,
                  "After generating, save the decode state (prompt + generated text) to FILE");
  cmd->add_option("--load-state", opt->load_state,
                  "Continue from a state saved by --save-state: the prompt (may be empty) is "
                  "appended after the saved text");
  cmd->callback([&g, opt] {
    apply_globals(g);
    SSM_CHECK(opt->n > 0, "generate: -n expected > 0, got {}", opt->n);
    const LanguageModel lm =
        LanguageModel::load(opt->model_dir, "generate", resolve_device(opt->device, "generate"));
    const std::vector<int64_t> prompt = lm.encode(opt->prompt);
    SSM_CHECK(!prompt.empty() || !opt->load_state.empty(),
              "generate: --prompt encodes to no tokens; give some text");
    const nn::MambaLM& model = lm.model();
    for (int64_t id : prompt)
      SSM_CHECK(id < model.config.vocab_size,
                "generate: prompt token id {} is outside the model's vocabulary of {}", id,
                model.config.vocab_size);

    infer::GenerateOptions go;
    go.max_new_tokens = opt->n;
    go.sampling = {opt->temperature, opt->top_k, opt->top_p};
    go.seed = opt->seed;
    nn::MambaLMCache start_state;
    if (!opt->load_state.empty()) {
      std::map<std::string, std::string> meta;
      start_state = io::load_cache(opt->load_state, model, &meta);
      go.start_state = &start_state;
      const auto last = meta.find("last_token");
      SSM_CHECK(last != meta.end(), "generate: {}: the state has no 'last_token'", opt->load_state);
      try {
        go.start_token = std::stoll(last->second);
      } catch (const std::exception&) {
        SSM_FAIL("generate: {}: 'last_token' expected an integer, got '{}'", opt->load_state,
                 last->second);
      }
      SSM_CHECK(go.start_token >= 0 && go.start_token < model.config.vocab_size,
                "generate: {}: 'last_token' {} is outside the model's vocabulary of {}",
                opt->load_state, go.start_token, model.config.vocab_size);
    }
    // Stream whole UTF-8 characters: decode everything so far and print what is new.
    std::vector<int64_t> so_far;
    size_t printed = 0;
    const auto on_token = [&](int64_t id) {
      if (opt->json) return true;
      so_far.push_back(id);
      const std::string text = lm.decode(so_far);
      if (text.size() > printed) {
        std::fwrite(text.data() + printed, 1, text.size() - printed, stdout);
        std::fflush(stdout);
        printed = text.size();
      }
      return true;
    };
    if (!opt->json) {
      std::fwrite(opt->prompt.data(), 1, opt->prompt.size(), stdout);
      std::fflush(stdout);
    }
    const infer::GenerateResult r = infer::generate(model, prompt, go, on_token);
    if (!opt->save_state.empty())
      io::save_cache(opt->save_state, r.state,
                     {{"arch", model.config.arch}, {"last_token", std::to_string(r.ids.back())}});
    if (opt->json) {
      const nlohmann::json j = {{"ids", r.ids},
                                {"text", lm.decode(r.ids)},
                                {"prompt_tokens_per_s", r.prompt_tokens_per_s},
                                {"gen_tokens_per_s", r.gen_tokens_per_s}};
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::fputc('\n', stdout);
      std::fprintf(stderr,
                   "prompt: %zu tokens, %.1f tokens/s; generated: %zu tokens, %.1f tokens/s\n",
                   prompt.size(), r.prompt_tokens_per_s, r.ids.size(), r.gen_tokens_per_s);
    }
  });
}

}  // namespace ssm::cli
