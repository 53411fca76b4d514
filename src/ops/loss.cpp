// mse_loss and the fused log-softmax cross_entropy (kernels/cpu/softmax).
#include "ssm/ops/loss.h"

#include <cmath>

#include "kernels/cpu/softmax.h"
#include "ops/cuda_loss.h"
#include "ssm/autograd/node.h"

namespace ssm {

namespace {

constexpr int64_t kParallelWork = int64_t{1} << 15;

// Σ (p − t)² in double.
template <typename T>
double squared_error_sum(const T* __restrict p, const T* __restrict t, int64_t n) {
  double s = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : s) if (n >= kParallelWork)
  for (int64_t i = 0; i < n; ++i) {
    const double e = static_cast<double>(p[i]) - static_cast<double>(t[i]);
    s += e * e;
  }
  return s;
}

// dp = scale · (p − t); dt = −dp. Either output may be nullptr.
template <typename T>
void squared_error_grad(const T* __restrict p, const T* __restrict t, T scale, T* __restrict dp,
                        T* __restrict dt, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelWork)
  for (int64_t i = 0; i < n; ++i) {
    const T g = scale * (p[i] - t[i]);
    if (dp) dp[i] = g;
    if (dt) dt[i] = -g;
  }
}

}  // namespace

Tensor mse_loss(const Tensor& prediction, const Tensor& target) {
  SSM_CHECK(prediction.defined() && target.defined(),
            "mse_loss: arguments 'prediction' and 'target' must be defined");
  SSM_CHECK(is_floating(prediction.dtype()),
            "mse_loss: argument 'prediction' expected float32 or float64, got {}",
            dtype_name(prediction.dtype()));
  SSM_CHECK(target.dtype() == prediction.dtype(),
            "mse_loss: argument 'target' expected dtype {} (like prediction), got {}",
            dtype_name(prediction.dtype()), dtype_name(target.dtype()));
  SSM_CHECK(target.shape() == prediction.shape(),
            "mse_loss: argument 'target' expected shape {} (like prediction), got {}",
            shape_str(prediction.shape()), shape_str(target.shape()));
  const int64_t n = prediction.numel();
  SSM_CHECK(n > 0, "mse_loss: argument 'prediction' is empty (shape {}); the mean is undefined",
            shape_str(prediction.shape()));
  const Tensor pc = prediction.detach().contiguous(), tc = target.detach().contiguous();
  const double loss = SSM_DISPATCH_FLOAT(pc.dtype(), "mse_loss", [&] {
    return squared_error_sum(pc.data<scalar_t>(), tc.data<scalar_t>(), n) / static_cast<double>(n);
  });
  Tensor out = Tensor::scalar(loss, pc.dtype());
  const bool need_p = prediction.requires_grad(), need_t = target.requires_grad();
  return record("mse_loss", out, {prediction, target},
                [pc, tc, n, need_p, need_t](const std::vector<Tensor>& g) {
                  const double scale = 2.0 * g[0].item() / static_cast<double>(n);
                  Tensor gp = need_p ? Tensor::empty(pc.shape(), pc.dtype()) : Tensor();
                  Tensor gt = need_t ? Tensor::empty(pc.shape(), pc.dtype()) : Tensor();
                  SSM_DISPATCH_FLOAT(pc.dtype(), "mse_loss", [&] {
                    squared_error_grad(pc.data<scalar_t>(), tc.data<scalar_t>(),
                                       static_cast<scalar_t>(scale),
                                       gp.defined() ? gp.data<scalar_t>() : nullptr,
                                       gt.defined() ? gt.data<scalar_t>() : nullptr, n);
                  });
                  return std::vector<Tensor>{gp, gt};
                });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                     double label_smoothing) {
  SSM_CHECK(logits.defined() && targets.defined(),
            "cross_entropy: arguments 'logits' and 'targets' must be defined");
  SSM_CHECK(is_floating(logits.dtype()),
            "cross_entropy: argument 'logits' expected float32 or float64, got {}",
            dtype_name(logits.dtype()));
  SSM_CHECK(logits.dim() >= 1 && logits.size(-1) > 0,
            "cross_entropy: argument 'logits' expected shape (N, C) with C > 0, got {}",
            shape_str(logits.shape()));
  SSM_CHECK(targets.dtype() == DType::I32 || targets.dtype() == DType::I64,
            "cross_entropy: argument 'targets' expected int32 or int64 class ids, got {}",
            dtype_name(targets.dtype()));
  // Classes are the last dim: logits (N, C) with targets (N), or generally (…, C) with (…).
  const Shape row_shape(logits.shape().begin(), logits.shape().end() - 1);
  SSM_CHECK(targets.shape() == row_shape,
            "cross_entropy: argument 'targets' expected shape {} to match logits {}, got {}",
            shape_str(row_shape), shape_str(logits.shape()), shape_str(targets.shape()));
  SSM_CHECK(label_smoothing >= 0 && label_smoothing <= 1,
            "cross_entropy: argument 'label_smoothing' expected a value in [0, 1], got {}",
            label_smoothing);
  // Targets may sit on either device; they join the logits' (class ids are small to move).
  if (logits.device() == Device::CUDA)
    return cuda_cross_entropy(logits, targets, ignore_index, label_smoothing);
  const int64_t C = logits.size(-1), N = logits.numel() / C;
  const Tensor xc = logits.detach().contiguous(), tc = targets.to(Device::CPU).contiguous();

  // Checked up front and serially: the kernel runs in threads, which must not throw.
  SSM_DISPATCH_INDEX(tc.dtype(), "cross_entropy", [&] {
    const index_t* t = tc.data<index_t>();
    for (int64_t i = 0; i < N; ++i) {
      const int64_t v = static_cast<int64_t>(t[i]);
      SSM_CHECK(v == ignore_index || (v >= 0 && v < C),
                "cross_entropy: argument 'targets' holds class id {} at index {}, expected a "
                "value in [0, {}) or ignore_index {}",
                v, i, C, ignore_index);
    }
  });

  Tensor row_max = Tensor::empty({N}, logits.dtype());
  Tensor log_sum = Tensor::empty({N}, logits.dtype());
  const cpu::CrossEntropySums sums = SSM_DISPATCH_FLOAT(xc.dtype(), "cross_entropy", [&] {
    return SSM_DISPATCH_INDEX(tc.dtype(), "cross_entropy", [&] {
      return cpu::cross_entropy_fwd(xc.data<scalar_t>(), tc.data<index_t>(),
                                    row_max.data<scalar_t>(), log_sum.data<scalar_t>(), N, C,
                                    ignore_index, label_smoothing);
    });
  });
  SSM_CHECK(sums.bad_row < 0,
            "cross_entropy: argument 'logits' row {} is not finite (NaN, +Inf, or all -Inf)",
            sums.bad_row);
  // A batch whose targets are all ignored has loss 0 and zero gradients (PyTorch gives NaN):
  // a fully padded batch must not poison training.
  const int64_t counted = sums.counted;
  const double loss = counted > 0 ? sums.loss_sum / static_cast<double>(counted) : 0.0;
  Tensor out = Tensor::scalar(loss, logits.dtype());
  return record(
      "cross_entropy", out, {logits},
      [xc, tc, row_max, log_sum, N, C, counted, ignore_index,
       label_smoothing](const std::vector<Tensor>& g) {
        const double scale = counted > 0 ? g[0].item() / static_cast<double>(counted) : 0.0;
        Tensor gx = Tensor::empty(xc.shape(), xc.dtype());
        SSM_DISPATCH_FLOAT(xc.dtype(), "cross_entropy", [&] {
          SSM_DISPATCH_INDEX(tc.dtype(), "cross_entropy", [&] {
            cpu::cross_entropy_bwd(xc.data<scalar_t>(), tc.data<index_t>(),
                                   row_max.data<scalar_t>(), log_sum.data<scalar_t>(),
                                   gx.data<scalar_t>(), N, C, ignore_index, label_smoothing, scale);
          });
        });
        return std::vector<Tensor>{gx};
      });
}

}  // namespace ssm
