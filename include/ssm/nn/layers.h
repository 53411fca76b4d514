#pragma once
// The plain building-block modules: Linear, Embedding, LayerNorm, RMSNorm, BatchNorm, Dropout.
// Each is a thin owner of parameters around the functional op of the same name.
#include <memory>

#include "ssm/core/rng.h"
#include "ssm/nn/module.h"

namespace ssm::nn {

class Linear : public Module {
 public:
  // PyTorch's default init: weight and bias ~ U(−1/√in, 1/√in).
  Linear(int64_t in, int64_t out, bool bias, Generator& gen, DType dtype = DType::F32);
  Tensor forward(const Tensor& x) const;  // (…, in) → (…, out)
  Tensor weight, bias;
};

class Embedding : public Module {
 public:
  Embedding(int64_t vocab, int64_t dim, Generator& gen, DType dtype = DType::F32);
  Tensor forward(const Tensor& ids) const;  // (…) → (…, dim)
  Tensor weight;
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, DType dtype = DType::F32);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;
  double eps;
};

class RMSNorm : public Module {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-5, DType dtype = DType::F32);
  Tensor forward(const Tensor& x) const;
  Tensor weight;
  double eps;
};

// Normalises (B, L, D) over (B, L) per channel; running statistics in eval mode.
class BatchNorm : public Module {
 public:
  explicit BatchNorm(int64_t dim, double momentum = 0.1, double eps = 1e-5, DType dtype = DType::F32);
  Tensor forward(const Tensor& x);
  Tensor weight, bias, running_mean, running_var;
  double momentum, eps;
};

class Dropout : public Module {
 public:
  Dropout(double p, uint64_t seed) : p(p), gen(seed) {}
  Tensor forward(const Tensor& x);
  double p;
  Generator gen;
};

}  // namespace ssm::nn
