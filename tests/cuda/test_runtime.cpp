// The CUDA runtime: what a build without a device (or without the backend) says, copies between
// host and device, the caching allocator, gradients through Tensor::to(Device), and the error a
// CPU-only op gives for a device tensor.
#include <vector>

#include "ssm/core/cuda.h"
#include "ssm/ops/conv.h"
#include "ssm/ops/elementwise.h"
#include "support/cuda_testing.h"
#include "support/testing.h"

using namespace ssm;

namespace {

TEST(CudaRuntime, WithoutDeviceAllocationsFailClearly) {
  if (cuda::available()) GTEST_SKIP() << "a CUDA device is present (see the device tests)";
  EXPECT_EQ(cuda::device_count(), 0);
  if (cuda::built())
    EXPECT_SSM_ERROR(Tensor::empty({3}, DType::F32, Device::CUDA), "cuda allocator",
                     "no usable CUDA device");
  else
    EXPECT_SSM_ERROR(Tensor::empty({3}, DType::F32, Device::CUDA), "no CUDA backend",
                     "SSM_CUDA=ON");
  EXPECT_SSM_ERROR(ssm::testing::random({4}).to(Device::CUDA), "cuda");
}

TEST(CudaRuntime, CopiesRoundTripExactly) {
  SSM_SKIP_WITHOUT_CUDA();
  for (DType dtype : {DType::F32, DType::F64}) {
    const Tensor x = ssm::testing::random({3, 5, 7}, dtype, 11);
    const Tensor d = x.to(Device::CUDA);
    EXPECT_EQ(d.device(), Device::CUDA);
    const Tensor d2 = d.clone();  // device to device
    EXPECT_EQ(d2.device(), Device::CUDA);
    EXPECT_EQ(ssm::testing::rel_error(d2.to(Device::CPU), x), 0.0) << dtype_name(dtype);
  }
  // A strided host tensor arrives contiguous with the same values.
  const Tensor x = ssm::testing::random({4, 6}, DType::F64, 12).transpose(0, 1);
  const Tensor back = x.to(Device::CUDA).to(Device::CPU);
  EXPECT_EQ(ssm::testing::rel_error(back, x), 0.0);
  std::printf("device: %s\n", cuda::device_description().c_str());
}

// contiguous() of strided device views (transpose, narrow, flip) runs the device copy kernel.
TEST(CudaRuntime, StridedDeviceViewsBecomeContiguous) {
  SSM_SKIP_WITHOUT_CUDA();
  ssm::testing::PoisonDeviceMemory poison;
  const Tensor x = ssm::testing::random({3, 4, 5}, DType::F64, 16);
  const Tensor d = x.to(Device::CUDA);
  const Tensor views[][2] = {{x.transpose(0, 2), d.transpose(0, 2)},
                             {x.narrow(1, 1, 2), d.narrow(1, 1, 2)},
                             {x.flip(2), d.flip(2)},
                             {x.permute({1, 2, 0}), d.permute({1, 2, 0})}};
  for (const auto& v : views) {
    const Tensor c = v[1].contiguous();
    EXPECT_TRUE(c.is_contiguous());
    EXPECT_EQ(c.device(), Device::CUDA);
    EXPECT_EQ(ssm::testing::rel_error(c.to(Device::CPU), v[0]), 0.0);
  }
  const Tensor i = Tensor::arange(12, DType::I64).reshape({3, 4});
  EXPECT_EQ(ssm::testing::rel_error(i.to(Device::CUDA).transpose(0, 1).contiguous().to(Device::CPU),
                                    i.transpose(0, 1)),
            0.0);
}

TEST(CudaRuntime, AllocatorReusesFreedBlocks) {
  SSM_SKIP_WITHOUT_CUDA();
  cuda::empty_cache();
  EXPECT_EQ(cuda::cached_bytes(), 0u);
  const size_t before = cuda::allocated_bytes();
  { Tensor t = Tensor::empty({1000, 1000}, DType::F32, Device::CUDA); }
  EXPECT_EQ(cuda::allocated_bytes(), before);
  const size_t cached = cuda::cached_bytes();
  EXPECT_GE(cached, 4'000'000u);
  Tensor again = Tensor::empty({999, 1001}, DType::F32, Device::CUDA);  // same rounded size
  EXPECT_EQ(cuda::cached_bytes(), 0u);
  EXPECT_GE(cuda::allocated_bytes(), before + 4'000'000u);
}

TEST(CudaRuntime, GradientFlowsThroughDeviceCopies) {
  SSM_SKIP_WITHOUT_CUDA();
  Tensor x = ssm::testing::random({5}, DType::F64, 13, true);
  Tensor y = x.to(Device::CUDA).to(Device::CPU);
  const Tensor g = ssm::testing::random({5}, DType::F64, 14);
  y.backward(g);
  EXPECT_EQ(ssm::testing::rel_error(x.grad(), g), 0.0);
}

TEST(CudaRuntime, CpuOnlyOpsRefuseDeviceTensors) {
  SSM_SKIP_WITHOUT_CUDA();
  const Tensor d = ssm::testing::random({4}, DType::F32, 15).to(Device::CUDA);
  // An op without a CUDA kernel yet (the FFT convolution of the LTI layers) refuses GPU input.
  const Tensor u = ssm::testing::random({1, 2, 8}, DType::F32, 16).to(Device::CUDA);
  const Tensor k = ssm::testing::random({2, 8}, DType::F32, 17).to(Device::CUDA);
  EXPECT_SSM_ERROR(ssm::fft_conv(u, k), "cuda");
  // CPU code that reaches the memory of a device tensor fails at the pointer, not in a segfault.
  EXPECT_SSM_ERROR(d.narrow(0, 1, 1).data<float>(), "cuda", "CPU code", "no CUDA kernel");
  EXPECT_SSM_ERROR(d.transpose(0, 0).fill_(1.0), "cuda");
}

}  // namespace
