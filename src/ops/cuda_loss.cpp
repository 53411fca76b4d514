// cross_entropy on CUDA logits as an autograd op: kernels/cuda/softmax.cu forward (per-row loss,
// row max and log-sum saved for the backward, then a one-block summary), the summary read back
// to raise the CPU op's errors, and the fused softmax-minus-target backward kernel.
#include "ops/cuda_loss.h"

#include "ssm/autograd/node.h"

#ifdef SSM_WITH_CUDA
#include "core/cuda/check.h"
#include "core/cuda/memory.h"
#include "kernels/cuda/softmax.h"
#endif

namespace ssm {

#ifdef SSM_WITH_CUDA

namespace {

constexpr char op[] = "cross_entropy";

template <typename T>
T* dev(const Tensor& t) {
  return t.data_on<T>(Device::CUDA);
}

}  // namespace

Tensor cuda_cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                          double label_smoothing) {
  namespace kc = kernels::cuda;
  const int64_t C = logits.size(-1), N = logits.numel() / C;
  const DType dtype = logits.dtype();
  const Tensor xc = logits.detach().contiguous();
  const Tensor tc = targets.to(Device::CUDA).contiguous();
  Tensor row_max = Tensor::empty({N}, dtype, Device::CUDA);
  Tensor log_sum = Tensor::empty({N}, dtype, Device::CUDA);
  const Tensor row_loss = Tensor::empty({N}, DType::F64, Device::CUDA);
  const Tensor row_state = Tensor::empty({N}, DType::I32, Device::CUDA);
  constexpr int64_t kSummaryWords = (sizeof(kc::CrossEntropySummary) + 7) / 8;
  const Tensor summary = Tensor::empty({kSummaryWords}, DType::I64, Device::CUDA);
  auto* summary_dev = static_cast<kc::CrossEntropySummary*>(summary.raw_data());
  Tensor out = Tensor::empty({}, dtype, Device::CUDA);
  SSM_DISPATCH_FLOAT(dtype, op, [&] {
    SSM_DISPATCH_INDEX(tc.dtype(), op, [&] {
      auto* forward = &kc::cross_entropy_fwd<scalar_t, index_t>;  // one macro argument
      SSM_CUDA_CHECK(forward(dev<scalar_t>(xc), dev<index_t>(tc), dev<scalar_t>(row_max),
                             dev<scalar_t>(log_sum), dev<double>(row_loss), dev<int32_t>(row_state),
                             summary_dev, dev<scalar_t>(out), N, C, ignore_index, label_smoothing,
                             cuda::detail::stream()),
                     op);
    });
  });
  kc::CrossEntropySummary sums{};
  cuda::detail::copy(&sums, summary_dev, sizeof(sums), cuda::detail::CopyKind::DeviceToHost);
  SSM_CHECK(sums.bad_target_index < 0,
            "cross_entropy: argument 'targets' holds class id {} at index {}, expected a value in "
            "[0, {}) or ignore_index {}",
            sums.bad_target_value, sums.bad_target_index, C, ignore_index);
  SSM_CHECK(sums.bad_row < 0,
            "cross_entropy: argument 'logits' row {} is not finite (NaN, +Inf, or all -Inf)",
            sums.bad_row);
  const int64_t counted = sums.counted;
  return record(
      op, out, {logits},
      [xc, tc, row_max, log_sum, N, C, counted, ignore_index,
       label_smoothing](const std::vector<Tensor>& g) {
        const Tensor gloss = g[0].to(Device::CUDA).contiguous();
        Tensor gx = Tensor::empty(xc.shape(), xc.dtype(), Device::CUDA);
        SSM_DISPATCH_FLOAT(xc.dtype(), op, [&] {
          SSM_DISPATCH_INDEX(tc.dtype(), op, [&] {
            auto* backward = &kc::cross_entropy_bwd<scalar_t, index_t>;
            SSM_CUDA_CHECK(
                backward(dev<scalar_t>(xc), dev<index_t>(tc), dev<scalar_t>(row_max),
                         dev<scalar_t>(log_sum), dev<scalar_t>(gloss), dev<scalar_t>(gx), N, C,
                         ignore_index, label_smoothing, counted, cuda::detail::stream()),
                op);
          });
        });
        return std::vector<Tensor>{gx};
      });
}

#else  // no CUDA backend

Tensor cuda_cross_entropy(const Tensor&, const Tensor&, int64_t, double) {
  SSM_FAIL("cross_entropy: this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
}

#endif

}  // namespace ssm
