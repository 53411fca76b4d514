// The ssm command-line tool. Subcommands are registered in one place: register_all (commands.h).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "commands.h"
#include "ssm/core/error.h"
#include "validators.h"

int main(int argc, char** argv) {
  CLI::App app{"ssm: deep structured state space models (S4, S4D, S5, Mamba) on CPU and GPU"};
  app.set_version_flag("--version", std::string("ssm ") + SSM_VERSION);
  app.require_subcommand(1);
  ssm::cli::GlobalOptions globals;
  app.add_option("--threads", globals.threads,
                 "Number of CPU threads (default: SSM_NUM_THREADS or all cores)")
      ->check(ssm::cli::kPositiveInteger);
  ssm::cli::register_all(app, globals);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0: CLI11 prints them. Real parse
    // errors become one line on stderr like every other error (CLI11's own print adds a
    // second "Run with --help" line).
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "ssm: error: %s (see --help)\n", e.what());
    return e.get_exit_code();
  } catch (const ssm::Error& e) {
    std::fprintf(stderr, "ssm: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ssm: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
