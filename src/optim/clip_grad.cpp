#include "ssm/optim/clip_grad.h"

#include <cmath>

namespace ssm::optim {

namespace {
template <typename scalar_t>
double sum_of_squares_kernel(const scalar_t* __restrict p, int64_t n) {
  double total = 0;
#pragma omp parallel for reduction(+ : total) if (n > 65536) schedule(static)
  for (int64_t i = 0; i < n; ++i) total += static_cast<double>(p[i]) * static_cast<double>(p[i]);
  return total;
}

// Sum of squares of one gradient, accumulated in double whatever the stored type.
// (The OpenMP loop lives in a function: a #pragma cannot appear inside a macro argument.)
double sum_of_squares(const Tensor& grad) {
  const Tensor g = grad.contiguous();
  return SSM_DISPATCH_FLOAT(g.dtype(), "clip_grad_norm",
                            [&] { return sum_of_squares_kernel(g.data<scalar_t>(), g.numel()); });
}
}  // namespace

double grad_norm(const std::vector<Tensor>& params) {
  double total = 0;
  for (const Tensor& p : params) {
    SSM_CHECK(p.defined(), "clip_grad_norm: argument 'params' holds an undefined tensor");
    const Tensor g = p.grad();
    if (g.defined()) total += sum_of_squares(g);
  }
  return std::sqrt(total);
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  SSM_CHECK(std::isfinite(max_norm) && max_norm > 0,
            "clip_grad_norm: argument 'max_norm' expected a finite value > 0, got {}", max_norm);
  const double norm = grad_norm(params);
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  const double coef = max_norm / (norm + 1e-6);
  for (const Tensor& p : params) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    // A fresh tensor, not an in-place scale: a gradient may share storage with another
    // parameter's gradient (the tape can hand the same tensor to two leaves).
    const Tensor src = g.contiguous();
    Tensor scaled = Tensor::empty(src.shape(), src.dtype());
    SSM_DISPATCH_FLOAT(src.dtype(), "clip_grad_norm", [&] {
      const scalar_t* in = src.data<scalar_t>();
      scalar_t* out = scaled.data<scalar_t>();
      const scalar_t c = static_cast<scalar_t>(coef);
      for (int64_t i = 0, n = src.numel(); i < n; ++i) out[i] = in[i] * c;
    });
    Tensor(p).set_grad(scaled);
  }
  return norm;
}

}  // namespace ssm::optim
