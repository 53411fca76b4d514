#include "ssm/nn/layers.h"

#include <cmath>

#include "ssm/ops/dropout.h"
#include "ssm/ops/embedding.h"
#include "ssm/ops/linear.h"
#include "ssm/ops/norm.h"

namespace ssm::nn {

Linear::Linear(int64_t in, int64_t out, bool with_bias, Generator& gen, DType dtype) {
  SSM_CHECK(in > 0 && out > 0, "Linear: sizes must be positive, got in={} out={}", in, out);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight = register_parameter("weight", rand_uniform({out, in}, -bound, bound, dtype, &gen));
  if (with_bias)
    bias = register_parameter("bias", rand_uniform({out}, -bound, bound, dtype, &gen),
                              ParamKind::NoDecay);
}

Tensor Linear::forward(const Tensor& x) const { return linear(x, weight, bias); }

Embedding::Embedding(int64_t vocab, int64_t dim, Generator& gen, DType dtype) {
  SSM_CHECK(vocab > 0 && dim > 0, "Embedding: sizes must be positive, got vocab={} dim={}", vocab, dim);
  weight = register_parameter("weight", randn({vocab, dim}, dtype, &gen), ParamKind::NoDecay);
}

Tensor Embedding::forward(const Tensor& ids) const { return embedding(ids, weight); }

LayerNorm::LayerNorm(int64_t dim, double eps_, DType dtype) : eps(eps_) {
  weight = register_parameter("weight", Tensor::ones({dim}, dtype), ParamKind::NoDecay);
  bias = register_parameter("bias", Tensor::zeros({dim}, dtype), ParamKind::NoDecay);
}

Tensor LayerNorm::forward(const Tensor& x) const { return layer_norm(x, weight, bias, eps); }

RMSNorm::RMSNorm(int64_t dim, double eps_, DType dtype) : eps(eps_) {
  weight = register_parameter("weight", Tensor::ones({dim}, dtype), ParamKind::NoDecay);
}

Tensor RMSNorm::forward(const Tensor& x) const { return rms_norm(x, weight, eps); }

BatchNorm::BatchNorm(int64_t dim, double momentum_, double eps_, DType dtype)
    : momentum(momentum_), eps(eps_) {
  weight = register_parameter("weight", Tensor::ones({dim}, dtype), ParamKind::NoDecay);
  bias = register_parameter("bias", Tensor::zeros({dim}, dtype), ParamKind::NoDecay);
  running_mean = register_buffer("running_mean", Tensor::zeros({dim}, dtype));
  running_var = register_buffer("running_var", Tensor::ones({dim}, dtype));
}

Tensor BatchNorm::forward(const Tensor& x) {
  return batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum, eps);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p, is_training(), gen); }

}  // namespace ssm::nn
