// `ssm info`: what this build is and what it will use.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "ssm/core/build_info.h"
#include "ssm/core/threads.h"

namespace ssm::cli {

void apply_globals(const GlobalOptions& g) {
  if (g.threads > 0) set_num_threads(g.threads);
}

void register_info(CLI::App& app, GlobalOptions& g) {
  auto* cmd = app.add_subcommand("info", "Version, build type, CPU features, threads, BLAS, FFT, CUDA");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print one JSON object on stdout");
  cmd->callback([&g, json] {
    apply_globals(g);
    BuildInfo b = build_info();
    if (*json) {
      nlohmann::json j = {{"version", b.version},       {"build_type", b.build_type},
                          {"native", b.native},         {"cpu_features", b.cpu_features},
                          {"threads", b.threads},       {"blas", b.blas},
                          {"fft", b.fft},               {"cuda_built", b.cuda_built},
                          {"cuda_devices", b.cuda_devices}};
      std::printf("%s\n", j.dump().c_str());
      return;
    }
    std::printf("ssm %s\n", b.version.c_str());
    std::printf("build:        %s%s\n", b.build_type.c_str(), b.native ? " (-march=native)" : "");
    std::printf("cpu features: %s\n", b.cpu_features.c_str());
    std::printf("threads:      %d\n", b.threads);
    std::printf("blas:         %s\n", b.blas.c_str());
    std::printf("fft:          %s\n", b.fft.c_str());
    std::printf("cuda:         %s\n",
                b.cuda_built ? fmt::format("built, {} device(s)", b.cuda_devices).c_str()
                             : "not built (configure with --preset cuda)");
  });
}

}  // namespace ssm::cli
