#pragma once
#include <string>

namespace ssm {

struct BuildInfo {
  std::string version, build_type, cpu_features, blas, fft;
  bool native = false;
  int threads = 1;
  bool cuda_built = false;
  int cuda_devices = 0;
};

BuildInfo build_info();

}  // namespace ssm
