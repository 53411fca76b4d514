#pragma once
// Moves a model's parameters away from their structured initialisation (D = 1, A_log = log n,
// norm weights 1, …) so that a mistake in how one of them is used cannot hide.
#include <string>

#include "ssm/autograd/node.h"
#include "ssm/core/rng.h"
#include "ssm/nn/module.h"
#include "ssm/ops/elementwise.h"

namespace ssm::testing {

// Every parameter += scale · N(0, 1), drawn from `g` in named_parameters() order.
inline void perturb_parameters(nn::Module& m, Generator& g, double scale) {
  NoGradGuard no_grad;
  for (auto& p : m.named_parameters())
    p.tensor.copy_(add(p.tensor, mul_scalar(randn(p.tensor.shape(), p.tensor.dtype(), &g), scale)));
}

inline void perturb_parameters(nn::Module& m, uint64_t seed, double scale) {
  Generator g(seed);
  perturb_parameters(m, g, scale);
}

// The parameters (scale 0.1), then BatchNorm's running statistics (means N(0, 0.3²), variances
// U[0.5, 2]) from the same generator, so eval-mode normalisation is not the identity either.
inline void perturb_parameters_and_norm_statistics(nn::Module& m, uint64_t seed) {
  NoGradGuard no_grad;
  Generator g(seed);
  perturb_parameters(m, g, 0.1);
  for (auto& [name, t] : m.state_dict()) {
    if (name.find("running_mean") != std::string::npos)
      t.copy_(mul_scalar(randn(t.shape(), t.dtype(), &g), 0.3));
    if (name.find("running_var") != std::string::npos)
      t.copy_(rand_uniform(t.shape(), 0.5, 2.0, t.dtype(), &g));
  }
}

}  // namespace ssm::testing
