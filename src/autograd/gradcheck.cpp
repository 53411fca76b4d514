#include "ssm/autograd/gradcheck.h"

#include <cmath>

#include "ssm/autograd/node.h"
#include "ssm/core/rng.h"

namespace ssm {

namespace {
double weighted_sum(const Tensor& out, const Tensor& w) {
  Tensor o = out.to(DType::F64).contiguous();
  const double* po = o.data<double>();
  const double* pw = w.data<double>();
  double s = 0;
  for (int64_t i = 0; i < o.numel(); ++i) s += po[i] * pw[i];
  return s;
}
}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, double eps, double tolerance,
                          uint64_t seed) {
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad())
      SSM_CHECK(t.dtype() == DType::F64 && t.is_contiguous(),
                "gradcheck: inputs must be contiguous float64, got {}", dtype_name(t.dtype()));
  for (const Tensor& t : inputs)
    if (t.defined()) const_cast<Tensor&>(t).zero_grad();

  Tensor out = fn(inputs);
  Generator gen(seed);
  Tensor w = randn(out.shape(), DType::F64, &gen);
  out.backward(w.to(out.dtype()));

  GradcheckResult result;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    Tensor analytic = x.grad();
    double* px = x.data<double>();
    double diff2 = 0, ref2 = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double saved = px[i];
      double plus, minus;
      {
        NoGradGuard ng;
        px[i] = saved + eps;
        plus = weighted_sum(fn(inputs), w);
        px[i] = saved - eps;
        minus = weighted_sum(fn(inputs), w);
        px[i] = saved;
      }
      const double numeric = (plus - minus) / (2 * eps);
      const double a = analytic.defined() ? analytic.contiguous().data<double>()[i] : 0.0;
      diff2 += (a - numeric) * (a - numeric);
      ref2 += numeric * numeric;
    }
    const double rel = std::sqrt(diff2) / std::max(std::sqrt(ref2), 1e-12);
    result.worst_relative_error = std::max(result.worst_relative_error, rel);
    const bool ok = rel <= tolerance && std::isfinite(rel);
    result.ok = result.ok && ok;
    result.report += fmt::format("input {} {}: relative error {:.3e} ({})\n", k,
                                 shape_str(x.shape()), rel, ok ? "ok" : "FAIL");
  }
  return result;
}

}  // namespace ssm
