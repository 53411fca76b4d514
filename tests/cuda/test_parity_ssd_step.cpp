// ssd_state_update (the Mamba-2 decode step), CUDA vs CPU: the advanced state and y_t over
// several steps, groups and odd sizes, with and without D; float64 to 1e-10 and float32 (vs the
// float64 CPU result) to 1e-5; NaN-poisoned device outputs.
#include <cstdio>

#include "ssm/ops/elementwise.h"
#include "ssm/ops/ssd.h"
#include "support/cuda_testing.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;

TEST(CudaParitySsdStep, StateAndOutputOverSeveralSteps) {
  SSM_SKIP_WITHOUT_CUDA();
  struct Size {
    int64_t B, H, G, P, N;
    bool with_D;
  };
  const Size sizes[] = {{1, 1, 1, 1, 1, true},
                        {2, 6, 3, 5, 7, true},
                        {3, 4, 1, 17, 33, false},
                        {1, 24, 1, 64, 128, true}};
  uint64_t seed = 900;
  for (const Size& s : sizes) {
    for (DType dtype : {DType::F64, DType::F32}) {
      ssm::testing::PoisonDeviceMemory poison;
      Tensor state_ref = ssm::testing::random({s.B, s.H, s.P, s.N}, DType::F64, seed);
      Tensor state_gpu = state_ref.to(dtype).to(Device::CUDA);
      const Tensor A = neg(exp(ssm::testing::random({s.H}, DType::F64, seed + 1)));
      const Tensor D = s.with_D ? ssm::testing::random({s.H}, DType::F64, seed + 2) : Tensor();
      double worst = 0;
      for (int step = 0; step < 3; ++step) {
        const uint64_t k = seed + 10 * (step + 1);
        const Tensor x = ssm::testing::random({s.B, s.H, s.P}, DType::F64, k);
        const Tensor dt = exp(ssm::testing::random({s.B, s.H}, DType::F64, k + 1)) * 0.1;
        const Tensor B = ssm::testing::random({s.B, s.G, s.N}, DType::F64, k + 2);
        const Tensor C = ssm::testing::random({s.B, s.G, s.N}, DType::F64, k + 3);
        auto dev = [&](const Tensor& t) {
          return t.defined() ? t.to(dtype).to(Device::CUDA) : Tensor();
        };
        const Tensor y_ref = ssd_state_update(state_ref, x, dt, A, B, C, D);
        const Tensor y =
            ssd_state_update(state_gpu, dev(x), dev(dt), dev(A), dev(B), dev(C), dev(D));
        EXPECT_EQ(y.device(), Device::CUDA);
        const double bound = dtype == DType::F64 ? 1e-10 : 1e-5;
        const double ey = rel_error(y.to(Device::CPU).to(DType::F64), y_ref);
        const double es = rel_error(state_gpu.to(Device::CPU).to(DType::F64), state_ref);
        worst = std::max({worst, ey, es});
        EXPECT_LT(ey, bound) << "y step " << step << " " << dtype_name(dtype);
        EXPECT_LT(es, bound) << "state step " << step << " " << dtype_name(dtype);
      }
      std::printf(
          "parity ssd_state_update B=%lld H=%lld G=%lld P=%lld N=%lld %s worst rel err %.2e\n",
          (long long)s.B, (long long)s.H, (long long)s.G, (long long)s.P, (long long)s.N,
          dtype_name(dtype), worst);
    }
    seed += 100;
  }
}
