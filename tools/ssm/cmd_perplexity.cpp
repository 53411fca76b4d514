// `ssm perplexity MODEL_DIR TEXT_FILE [--ctx N] [--json]`: exp of the mean negative
// log-likelihood of a text file's tokens, over non-overlapping windows of N tokens
// (ssm/infer/perplexity.h), for a Hugging Face model directory or a byte-level text run.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "device_option.h"
#include "language_model.h"
#include "ssm/core/error.h"
#include "ssm/infer/perplexity.h"
#include "ssm/train/progress.h"
#include "validators.h"

namespace ssm::cli {

void register_perplexity(CLI::App& app, GlobalOptions& g) {
  struct Args {
    std::string model_dir, text_file, device = "cpu";
    int64_t ctx = 0;
    int64_t batch = 8;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("perplexity", "Perplexity of a text file under a language model");
  cmd->add_option("model_dir", a->model_dir,
                  "Hugging Face model directory (with tokenizer.json) or a byte-level text run")
      ->required();
  cmd->add_option("text_file", a->text_file, "The text to score")->required();
  auto* ctx_option = cmd->add_option(
      "--ctx", a->ctx, "Window length in tokens (default 1024, or the whole text when shorter)");
  cmd->add_option("--batch-size", a->batch, "Windows run together (speed only)")
      ->check(kPositiveInteger);
  add_device_option(cmd, a->device);
  cmd->add_flag("--json", a->json, "Print one JSON object on stdout");
  cmd->callback([&g, a, ctx_option] {
    apply_globals(g);
    const bool ctx_given = ctx_option->count() > 0;
    SSM_CHECK(!ctx_given || a->ctx >= 2, "perplexity: --ctx expected ≥ 2, got {}", a->ctx);
    std::ifstream in(a->text_file, std::ios::binary);
    SSM_CHECK(in.good(), "perplexity: cannot open text file '{}'", a->text_file);
    std::ostringstream text;
    text << in.rdbuf();
    const LanguageModel lm =
        LanguageModel::load(a->model_dir, "perplexity", resolve_device(a->device, "perplexity"));
    const std::vector<int64_t> tokens = lm.encode(text.str());
    SSM_CHECK(tokens.size() >= 2, "perplexity: '{}' holds {} token(s); at least 2 are needed",
              a->text_file, tokens.size());
    const auto T = static_cast<int64_t>(tokens.size());
    SSM_CHECK(!ctx_given || a->ctx <= T,
              "perplexity: --ctx {} is longer than the {} tokens of '{}'", a->ctx, T, a->text_file);
    const int64_t ctx = ctx_given ? a->ctx : std::min<int64_t>(1024, T);
    train::Progress timer("perplexity", 1);
    const infer::PerplexityResult r = infer::perplexity(lm.model(), tokens, ctx, a->batch);
    const double seconds = timer.elapsed_seconds();
    if (a->json) {
      const nlohmann::json j = {{"perplexity", r.perplexity},
                                {"tokens", r.tokens},
                                {"mean_nll", r.mean_nll},
                                {"windows", r.windows},
                                {"ctx", ctx}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      const std::string bits =
          lm.byte_level() ? fmt::format(", {:.4f} bits per byte", r.mean_nll / std::log(2.0)) : "";
      std::printf(
          "perplexity %.4f (mean NLL %.4f nats%s) over %lld tokens in %lld windows of %lld\n",
          r.perplexity, r.mean_nll, bits.c_str(), static_cast<long long>(r.tokens),
          static_cast<long long>(r.windows), static_cast<long long>(ctx));
    }
    std::fprintf(stderr, "%.1f tokens/s\n",
                 static_cast<double>(r.tokens + r.windows) / std::max(seconds, 1e-9));
  });
}

}  // namespace ssm::cli
