#include "support/torch_reference.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ssm/core/error.h"

namespace ssm::testing {

namespace {
const char* kPython = "/usr/bin/python3";
}

bool torch_available() {
  static const bool ok = [] {
    if (!std::filesystem::exists(kPython)) return false;
    return std::system((std::string(kPython) + " -c 'import torch' >/dev/null 2>&1").c_str()) == 0;
  }();
  return ok;
}

std::map<std::string, Tensor> run_torch(const std::string& script,
                                        const std::map<std::string, Tensor>& inputs) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ssm_torch_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path in_path = dir / "in.json", out_path = dir / "out.json";
  nlohmann::json j;
  for (const auto& [name, t] : inputs) j[name] = {{"shape", t.shape()}, {"data", t.to_vector()}};
  std::ofstream(in_path) << j.dump();
  const std::string src = SSM_SOURCE_DIR;
  const std::string cmd = std::string(kPython) + " " + src + "/tests/python/torch_bridge.py " + src +
                          "/tests/python/" + script + " " + in_path.string() + " " +
                          out_path.string();
  SSM_CHECK(std::system(cmd.c_str()) == 0, "run_torch: '{}' failed", cmd);
  nlohmann::json r = nlohmann::json::parse(std::ifstream(out_path));
  std::map<std::string, Tensor> out;
  for (auto& [name, v] : r.items())
    out[name] = Tensor::from_vector(v["data"].get<std::vector<double>>(),
                                    v["shape"].get<Shape>(), DType::F64);
  fs::remove_all(dir);
  return out;
}

}  // namespace ssm::testing
