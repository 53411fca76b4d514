#pragma once
// One place where every subcommand is registered. Each subcommand lives in its own
// file as `void register_<name>(CLI::App&, GlobalOptions&)`, and runs its work in a
// callback that may throw ssm::Error (main turns that into one line and exit 1).
// Conventions: progress on stderr; with --json, exactly one JSON object on stdout.
#include <CLI/CLI.hpp>

namespace ssm::cli {

struct GlobalOptions {
  int threads = 0;  // 0: keep the default
};

// Applies the global options (thread count); call first in every subcommand callback.
void apply_globals(const GlobalOptions& g);

void register_info(CLI::App& app, GlobalOptions& g);
void register_train(CLI::App& app, GlobalOptions& g);
void register_eval(CLI::App& app, GlobalOptions& g);
void register_data(CLI::App& app, GlobalOptions& g);
void register_tokenize(CLI::App& app, GlobalOptions& g);
void register_generate(CLI::App& app, GlobalOptions& g);
void register_bench(CLI::App& app, GlobalOptions& g);
void register_perplexity(CLI::App& app, GlobalOptions& g);

inline void register_all(CLI::App& app, GlobalOptions& g) {
  register_info(app, g);
  register_train(app, g);
  register_eval(app, g);
  register_data(app, g);
  register_tokenize(app, g);
  register_generate(app, g);
  register_bench(app, g);
  register_perplexity(app, g);
}

}  // namespace ssm::cli
