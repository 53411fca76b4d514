#pragma once
// Runs a PyTorch reference (Debian python3-torch, via /usr/bin/python3) on our tensors.
//
// The Python side is a script under tests/python/ that defines
//     def run(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]
// tests/python/torch_bridge.py loads the inputs (float64), calls run(), and writes the
// results back. Tensors travel as JSON: {"name": {"shape": [...], "data": [...]}}.
// When torch is not installed the caller skips: `if (!torch_available()) GTEST_SKIP()`.
#include <map>
#include <string>

#include "ssm/core/tensor.h"

namespace ssm::testing {

bool torch_available();

// Runs tests/python/<script> on `inputs`, returns its outputs (float64, contiguous).
std::map<std::string, Tensor> run_torch(const std::string& script,
                                        const std::map<std::string, Tensor>& inputs);

}  // namespace ssm::testing
