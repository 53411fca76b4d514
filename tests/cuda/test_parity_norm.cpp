// rms_norm and gated_rms_norm, CUDA vs CPU: forward and the gradients of x, z and weight through
// the autograd op, odd sizes, float64 to 1e-10 and float32 (vs the float64 CPU result) to 1e-5,
// NaN-poisoned device outputs.
#include <cstdio>
#include <vector>

#include "ssm/ops/norm.h"
#include "support/cuda_testing.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

Tensor f64_cpu(const Tensor& t) {
  return t.to(Device::CPU).to(DType::F64);
}

std::vector<Tensor> run(const Tensor& x0, const Tensor& z0, const Tensor& w0, const Tensor& dy,
                        int64_t group, Device device, DType dtype) {
  auto leaf = [&](const Tensor& t) {
    return t.defined() ? t.to(dtype).to(device).detach().requires_grad_() : Tensor();
  };
  Tensor x = leaf(x0), z = leaf(z0), w = leaf(w0);
  Tensor y = z.defined() ? gated_rms_norm(x, z, w, group, 1e-5) : rms_norm(x, w, 1e-5);
  EXPECT_EQ(y.device(), device);
  y.backward(dy.to(dtype).to(device));
  std::vector<Tensor> r{f64_cpu(y.detach()), f64_cpu(x.grad()), f64_cpu(w.grad())};
  if (z.defined()) r.push_back(f64_cpu(z.grad()));
  return r;
}

TEST(CudaParityNorm, RmsAndGatedRmsOddSizes) {
  SSM_SKIP_WITHOUT_CUDA();
  struct Size {
    int64_t rows, D, group;
    bool gated;
  };
  const Size sizes[] = {{1, 1, 1, false},  {7, 33, 33, false},    {129, 768, 768, false},
                        {5, 96, 24, true}, {3, 1000, 1000, true}, {65, 2050, 410, true}};
  uint64_t seed = 700;
  for (const Size& s : sizes) {
    const Tensor x = ssm::testing::random({s.rows, s.D}, DType::F64, seed++);
    const Tensor z = s.gated ? ssm::testing::random({s.rows, s.D}, DType::F64, seed++) : Tensor();
    const Tensor w = ssm::testing::random({s.D}, DType::F64, seed++);
    const Tensor dy = ssm::testing::random({s.rows, s.D}, DType::F64, seed++);
    const std::vector<Tensor> ref = run(x, z, w, dy, s.group, Device::CPU, DType::F64);
    for (DType dtype : {DType::F64, DType::F32}) {
      ssm::testing::PoisonDeviceMemory poison;
      const double bound = dtype == DType::F64 ? 1e-10 : 1e-5;
      const std::vector<Tensor> got = run(x, z, w, dy, s.group, Device::CUDA, dtype);
      double worst = 0;
      for (size_t i = 0; i < ref.size(); ++i) {
        const double e = rel_error(got[i], ref[i]);
        worst = std::max(worst, e);
        EXPECT_LT(e, bound) << "output " << i << " rows=" << s.rows << " D=" << s.D
                            << " group=" << s.group << " " << dtype_name(dtype);
      }
      std::printf("parity %s rows=%lld D=%lld group=%lld %s worst rel err %.2e\n",
                  s.gated ? "gated_rms_norm" : "rms_norm", (long long)s.rows, (long long)s.D,
                  (long long)s.group, dtype_name(dtype), worst);
    }
  }
}

}  // namespace
