#pragma once
// --device for the commands that can run on the GPU (train, eval, generate, perplexity).
#include <CLI/CLI.hpp>
#include <string>

#include "ssm/core/cuda.h"
#include "ssm/core/error.h"
#include "ssm/core/tensor.h"

namespace ssm::cli {

inline CLI::Option* add_device_option(CLI::App* cmd, std::string& device) {
  return cmd->add_option("--device", device, "cpu (default) or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));
}

// The device a --device value names, checked to be usable here.
inline Device resolve_device(const std::string& name, const char* command) {
  if (name != "cuda") return Device::CPU;
  SSM_CHECK(cuda::available(), "{}: --device cuda, but {}", command,
            cuda::built() ? "this machine has no usable CUDA device"
                          : "this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
  return Device::CUDA;
}

}  // namespace ssm::cli
