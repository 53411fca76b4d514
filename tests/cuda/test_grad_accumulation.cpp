// Gradient accumulation on the GPU: a CUDA tensor that receives gradients from several places
// (two ops, two inputs of one op, two backward passes) gets their sum, computed by the device
// add kernel, equal to the CPU run. NaN-poisoned device memory; float64 to 1e-12, float32 to 1e-5.
#include <cstdio>
#include <vector>

#include "ssm/autograd/node.h"
#include "ssm/core/reduce_to_shape.h"
#include "ssm/ops/norm.h"
#include "support/cuda_testing.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

Tensor f64_cpu(const Tensor& t) {
  return t.to(Device::CPU).to(DType::F64);
}

// x feeds rms_norm twice (u and v); u feeds both inputs of gated_rms_norm. Two backward passes
// through two roots each, so x.grad is accumulated across passes as well.
std::vector<Tensor> run(const std::vector<Tensor>& in, Device device, DType dtype) {
  auto leaf = [&](const Tensor& t) { return t.to(dtype).to(device).detach().requires_grad_(); };
  Tensor x = leaf(in[0]), w1 = leaf(in[1]), w2 = leaf(in[2]), w3 = leaf(in[3]);
  for (int pass = 0; pass < 2; ++pass) {
    Tensor u = rms_norm(x, w1, 1e-5);
    Tensor y = gated_rms_norm(u, u, w2, x.size(1), 1e-5);
    Tensor v = rms_norm(x, w3, 1e-5);
    EXPECT_EQ(y.device(), device);
    run_backward({y, v}, {in[4].to(dtype).to(device), in[5].to(dtype).to(device)}, false);
  }
  EXPECT_EQ(x.grad().device(), device);
  return {f64_cpu(x.grad()), f64_cpu(w1.grad()), f64_cpu(w2.grad()), f64_cpu(w3.grad())};
}

TEST(CudaGradAccumulation, TensorFeedingTwoOpsMatchesCpu) {
  SSM_SKIP_WITHOUT_CUDA();
  const int64_t rows = 37, D = 129;
  uint64_t seed = 9100;
  std::vector<Tensor> in;
  for (const Shape& s :
       {Shape{rows, D}, Shape{D}, Shape{D}, Shape{D}, Shape{rows, D}, Shape{rows, D}})
    in.push_back(ssm::testing::random(s, DType::F64, seed++));
  const std::vector<Tensor> ref = run(in, Device::CPU, DType::F64);
  for (DType dtype : {DType::F64, DType::F32}) {
    ssm::testing::PoisonDeviceMemory poison;
    const double bound = dtype == DType::F64 ? 1e-12 : 1e-5;
    const std::vector<Tensor> got = run(in, Device::CUDA, dtype);
    for (size_t i = 0; i < ref.size(); ++i) {
      const double e = rel_error(got[i], ref[i]);
      EXPECT_LT(e, bound) << "gradient " << i << " " << dtype_name(dtype);
      std::printf("parity grad accumulation grad %zu %s rel err %.2e\n", i, dtype_name(dtype), e);
    }
  }
}

TEST(CudaGradAccumulation, AddsAcrossDevicesIntoTheSlotsDevice) {
  SSM_SKIP_WITHOUT_CUDA();
  Tensor out = ssm::testing::random({5, 7}, DType::F64, 9200);
  const Tensor src = ssm::testing::random({5, 7}, DType::F64, 9201);
  Tensor expected = out.clone();
  add_into(expected, src);
  Tensor dev = out.to(Device::CUDA);
  add_into(dev, src);  // a CPU gradient into a CUDA slot
  EXPECT_EQ(dev.device(), Device::CUDA);
  EXPECT_LT(rel_error(dev.to(Device::CPU), expected), 1e-15);
}

}  // namespace
