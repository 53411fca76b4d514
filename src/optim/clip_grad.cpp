#include "ssm/optim/clip_grad.h"

#include <algorithm>
#include <cmath>
#include <vector>

#ifdef SSM_WITH_CUDA
#include "core/cuda/check.h"
#include "kernels/cuda/clip_grad.h"
#endif

namespace ssm::optim {

namespace {
template <typename scalar_t>
double sum_of_squares_kernel(const scalar_t* __restrict p, int64_t n) {
  double total = 0;
#pragma omp parallel for reduction(+ : total) if (n > 65536) schedule(static)
  for (int64_t i = 0; i < n; ++i) total += static_cast<double>(p[i]) * static_cast<double>(p[i]);
  return total;
}

// Sum of squares of one host gradient, accumulated in double whatever the stored type.
// (The OpenMP loop lives in a function: a #pragma cannot appear inside a macro argument.)
double sum_of_squares(const Tensor& grad) {
  const Tensor g = grad.contiguous();
  return SSM_DISPATCH_FLOAT(g.dtype(), "clip_grad_norm",
                            [&] { return sum_of_squares_kernel(g.data<scalar_t>(), g.numel()); });
}

// The sums of squares of device gradients: every reduction is queued, its double result lands in
// one device array, and a single copy back (the one host sync) reads them all.
std::vector<double> sums_of_squares_cuda(const std::vector<Tensor>& grads) {
  if (grads.empty()) return {};
#ifdef SSM_WITH_CUDA
  namespace kg = kernels::cuda;
  const Device d = Device::CUDA;
  std::vector<Tensor> contiguous;
  int64_t scratch_size = 0;
  for (const Tensor& g : grads) {
    contiguous.push_back(g.contiguous());
    scratch_size = std::max(scratch_size, kg::sum_of_squares_scratch(g.numel()));
  }
  // One scratch for all: the reductions run in stream order, each done before the next starts.
  const Tensor scratch = Tensor::empty({scratch_size}, DType::F64, d);
  const Tensor sums = Tensor::empty({static_cast<int64_t>(grads.size())}, DType::F64, d);
  double* out = sums.data_on<double>(d);
  for (size_t i = 0; i < contiguous.size(); ++i) {
    const Tensor& g = contiguous[i];
    SSM_DISPATCH_FLOAT(g.dtype(), "clip_grad_norm", [&] {
      SSM_CUDA_CHECK(
          kg::sum_of_squares<scalar_t>(g.data_on<scalar_t>(d), g.numel(),
                                       scratch.data_on<double>(d), out + i, cuda::detail::stream()),
          "clip_grad_norm");
    });
  }
  return sums.to(Device::CPU).to_vector();
#else
  SSM_FAIL("clip_grad_norm: a gradient is on {} but this build has no CUDA backend",
           device_name(grads.front().device()));
#endif
}

// grad · coef as a fresh tensor on the gradient's device, the product in the stored type.
Tensor scaled(const Tensor& grad, double coef) {
  const Tensor src = grad.contiguous();
  Tensor out = Tensor::empty(src.shape(), src.dtype(), src.device());
  SSM_DISPATCH_FLOAT(src.dtype(), "clip_grad_norm", [&] {
    const scalar_t c = static_cast<scalar_t>(coef);
    if (src.device() == Device::CPU) {
      const scalar_t* in = src.data<scalar_t>();
      scalar_t* o = out.data<scalar_t>();
      for (int64_t i = 0, n = src.numel(); i < n; ++i) o[i] = in[i] * c;
      return;
    }
#ifdef SSM_WITH_CUDA
    const Device d = Device::CUDA;
    SSM_CUDA_CHECK(
        kernels::cuda::scale<scalar_t>(src.data_on<scalar_t>(d), out.data_on<scalar_t>(d),
                                       src.numel(), c, cuda::detail::stream()),
        "clip_grad_norm");
#else
    SSM_FAIL("clip_grad_norm: a gradient is on {} but this build has no CUDA backend",
             device_name(src.device()));
#endif
  });
  return out;
}
}  // namespace

double grad_norm(const std::vector<Tensor>& params) {
  // Each gradient's sum of squares, added in parameter order whichever device computed it.
  std::vector<double> parts;
  std::vector<size_t> on_cuda;  // indices into parts still to be filled from the device
  std::vector<Tensor> cuda_grads;
  for (const Tensor& p : params) {
    SSM_CHECK(p.defined(), "clip_grad_norm: argument 'params' holds an undefined tensor");
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    if (g.device() == Device::CPU) {
      parts.push_back(sum_of_squares(g));
    } else {
      on_cuda.push_back(parts.size());
      cuda_grads.push_back(g);
      parts.push_back(0);
    }
  }
  const std::vector<double> device_parts = sums_of_squares_cuda(cuda_grads);
  for (size_t k = 0; k < on_cuda.size(); ++k) parts[on_cuda[k]] = device_parts[k];
  double total = 0;
  for (double s : parts) total += s;
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
    Tensor(p).set_grad(scaled(g, coef));
  }
  return norm;
}

}  // namespace ssm::optim
