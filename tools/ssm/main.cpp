// The ssm command-line tool. Subcommands register themselves in commands.cpp.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "commands.h"
#include "ssm/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"ssm: deep structured state space models (S4, S4D, S5, Mamba) on CPU and GPU"};
  app.set_version_flag("--version", std::string("ssm ") + SSM_VERSION);
  app.require_subcommand(1);
  ssm::cli::GlobalOptions globals;
  app.add_option("--threads", globals.threads, "Number of CPU threads (default: SSM_NUM_THREADS or all cores)")
      ->check(CLI::PositiveNumber);
  ssm::cli::register_all(app, globals);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ssm::Error& e) {
    std::fprintf(stderr, "ssm: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ssm: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
