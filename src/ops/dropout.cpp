// Inverted dropout. The mask is drawn in row-major element order from the caller's
// Generator (element i is dropped when the i-th uniform draw is < p), so a seed fixes the
// mask on every machine. The kept elements are scaled by 1/(1 − p) in training, which
// keeps E[out] = x and makes evaluation a plain identity.
#include "ssm/ops/dropout.h"

#include <cmath>

#include "kernels/cpu/elementwise.h"
#include "ssm/autograd/node.h"

namespace ssm {

namespace {

template <typename T>
void multiply(const T* __restrict x, const T* __restrict mask, T* __restrict y, int64_t n) {
#pragma omp parallel for if (n > cpu::kParallelThreshold) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * mask[i];
}

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  SSM_CHECK(x.defined(), "dropout: argument 'x' is an undefined tensor");
  SSM_CHECK(is_floating(x.dtype()), "dropout: argument 'x' expected float32 or float64, got {}",
            dtype_name(x.dtype()));
  SSM_CHECK(x.device() == Device::CPU, "dropout: argument 'x' expected a CPU tensor, got {}",
            device_name(x.device()));
  SSM_CHECK(p >= 0.0 && p < 1.0, "dropout: argument 'p' expected in [0, 1), got {}", p);
  if (!training || p == 0.0) return x;

  const Tensor xc = x.detach().contiguous();
  const int64_t n = xc.numel();
  Tensor mask = Tensor::empty(xc.shape(), xc.dtype());
  Tensor y = Tensor::empty(xc.shape(), xc.dtype());
  SSM_DISPATCH_FLOAT(x.dtype(), "dropout", [&] {
    const auto keep_scale = static_cast<scalar_t>(1.0 / (1.0 - p));
    scalar_t* m = mask.data<scalar_t>();
    for (int64_t i = 0; i < n; ++i) m[i] = gen.uniform() < p ? scalar_t(0) : keep_scale;
    multiply(xc.data<scalar_t>(), m, y.data<scalar_t>(), n);
  });
  if (!needs_grad({x})) return y;
  return record("dropout", y, {x}, [mask](const std::vector<Tensor>& g) {
    Tensor gy = g[0].contiguous();
    Tensor gx = Tensor::empty(mask.shape(), mask.dtype());
    SSM_DISPATCH_FLOAT(mask.dtype(), "dropout", [&] {
      multiply(gy.data<scalar_t>(), mask.data<scalar_t>(), gx.data<scalar_t>(), mask.numel());
    });
    return std::vector<Tensor>{gx};
  });
}

}  // namespace ssm
