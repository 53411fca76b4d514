// causal_conv1d and its decode update, CUDA vs CPU: forward and every gradient through the
// autograd op on fresh random inputs of odd sizes (float64 to 1e-10; float32 on the device
// against the float64 CPU result to 1e-5), a strided input, NaN-poisoned device outputs.
#include <cstdio>
#include <vector>

#include "ssm/core/rng.h"
#include "ssm/ops/conv.h"
#include "support/cuda_testing.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

Tensor f64_cpu(const Tensor& t) {
  return t.to(Device::CPU).to(DType::F64);
}

struct ConvRun {
  Tensor y, dx, dw, db;
};

ConvRun run(const Tensor& x0, const Tensor& w0, const Tensor& b0, const Tensor& dy, Device device,
            DType dtype, bool transposed_x) {
  Tensor x = transposed_x ? x0.transpose(1, 2).contiguous().to(dtype).to(device).transpose(1, 2)
                          : x0.to(dtype).to(device);
  x = x.detach().requires_grad_();
  Tensor w = w0.to(dtype).to(device).detach().requires_grad_();
  Tensor b = b0.to(dtype).to(device).detach().requires_grad_();
  Tensor y = causal_conv1d(x, w, b);
  EXPECT_EQ(y.device(), device);
  y.backward(dy.to(dtype).to(device));
  return {f64_cpu(y.detach()), f64_cpu(x.grad()), f64_cpu(w.grad()), f64_cpu(b.grad())};
}

TEST(CudaParityConv1d, ForwardBackwardOddSizes) {
  SSM_SKIP_WITHOUT_CUDA();
  struct Size {
    int64_t B, D, L, K;
    bool transposed;
  };
  const Size sizes[] = {{3, 5, 1, 4, false},    {2, 7, 7, 4, false},   {3, 5, 1000, 4, true},
                        {2, 3, 4097, 5, false}, {1, 9, 300, 1, false}, {2, 4, 33, 2, true}};
  uint64_t seed = 300;
  for (const Size& s : sizes) {
    const Tensor x = ssm::testing::random({s.B, s.D, s.L}, DType::F64, seed++);
    const Tensor w = ssm::testing::random({s.D, s.K}, DType::F64, seed++);
    const Tensor b = ssm::testing::random({s.D}, DType::F64, seed++);
    const Tensor dy = ssm::testing::random({s.B, s.D, s.L}, DType::F64, seed++);
    const ConvRun ref = run(x, w, b, dy, Device::CPU, DType::F64, false);
    for (DType dtype : {DType::F64, DType::F32}) {
      ssm::testing::PoisonDeviceMemory poison;
      const double bound = dtype == DType::F64 ? 1e-10 : 1e-5;
      const ConvRun got = run(x, w, b, dy, Device::CUDA, dtype, s.transposed);
      const double errs[] = {rel_error(got.y, ref.y), rel_error(got.dx, ref.dx),
                             rel_error(got.dw, ref.dw), rel_error(got.db, ref.db)};
      double worst = 0;
      for (double e : errs) worst = std::max(worst, e);
      EXPECT_LT(worst, bound) << "B=" << s.B << " D=" << s.D << " L=" << s.L << " K=" << s.K << " "
                              << dtype_name(dtype) << " y/dx/dw/db " << errs[0] << " " << errs[1]
                              << " " << errs[2] << " " << errs[3];
      std::printf("parity causal_conv1d B=%lld D=%lld L=%lld K=%lld%s %s worst rel err %.2e\n",
                  (long long)s.B, (long long)s.D, (long long)s.L, (long long)s.K,
                  s.transposed ? " (strided x)" : "", dtype_name(dtype), worst);
    }
  }
}

TEST(CudaParityConv1d, DecodeUpdate) {
  SSM_SKIP_WITHOUT_CUDA();
  ssm::testing::PoisonDeviceMemory poison;
  const int64_t B = 2, D = 5, K = 4, steps = 11;
  const Tensor w = ssm::testing::random({D, K}, DType::F64, 401);
  const Tensor b = ssm::testing::random({D}, DType::F64, 402);
  Tensor state_cpu = ssm::testing::random({B, D, K - 1}, DType::F64, 403);
  Tensor state_dev = state_cpu.to(Device::CUDA);
  const Tensor w_dev = w.to(Device::CUDA), b_dev = b.to(Device::CUDA);
  double worst = 0;
  for (int64_t t = 0; t < steps; ++t) {
    const Tensor x = ssm::testing::random({B, D}, DType::F64, 500 + t);
    const Tensor y_ref = causal_conv1d_update(x, state_cpu, w, b);
    const Tensor y = causal_conv1d_update(x.to(Device::CUDA), state_dev, w_dev, b_dev);
    worst = std::max(worst, rel_error(y.to(Device::CPU), y_ref));
  }
  worst = std::max(worst, rel_error(state_dev.to(Device::CPU), state_cpu));
  EXPECT_LT(worst, 1e-12);
  std::printf("parity causal_conv1d_update B=2 D=5 K=4, 11 steps, f64 worst rel err %.2e\n", worst);
}

}  // namespace
