#pragma once
// Finite-difference gradient checker (central differences, float64).
// The function's output is contracted with fixed random weights w so that one backward
// pass checks the full Jacobian-vector product: d/dx sum(w ⊙ f(x)).
#include <functional>
#include <string>
#include <vector>

#include "ssm/core/tensor.h"

namespace ssm {

struct GradcheckResult {
  bool ok = true;
  double worst_relative_error = 0.0;  // max over inputs of ‖analytic − numeric‖ / ‖numeric‖
  std::string report;                 // one line per input
};

// Checks every input with requires_grad. Inputs must be float64.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, double eps = 1e-6,
                          double tolerance = 1e-6, uint64_t seed = 1234);

}  // namespace ssm
