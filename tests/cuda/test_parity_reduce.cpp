// sum / mean over dims, sum_to_shape and reduce_to_shape, CUDA vs CPU: every kernel path of the
// device reduction (few values per output, rows, columns, chunked along the reduced dims, dims
// that are not one block and need a permute), keepdim, empty and size-1 dims, and the gradients;
// float64 to 1e-10 and float32 (vs the float64 CPU result) to 1e-5, NaN-poisoned device memory.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "ssm/core/reduce_to_shape.h"
#include "ssm/ops/reduce.h"
#include "support/cuda_testing.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

Tensor f64_cpu(const Tensor& t) {
  return t.to(Device::CPU).to(DType::F64);
}

struct Case {
  Shape shape;
  std::vector<int64_t> dims;
  bool keepdim;
  const char* path;  // which device kernel it exercises
};

// The reduction and x's gradient for an upstream gradient dy (float64, CPU).
std::vector<Tensor> run(const Tensor& x0, const Case& c, bool is_mean, uint64_t dy_seed,
                        Device device, DType dtype) {
  Tensor x = x0.to(dtype).to(device).detach().requires_grad_();
  Tensor y = is_mean ? mean(x, c.dims, c.keepdim) : sum(x, c.dims, c.keepdim);
  EXPECT_EQ(y.device(), device);
  const Tensor dy = ssm::testing::random(y.shape(), DType::F64, dy_seed);
  y.backward(dy.to(dtype).to(device));
  EXPECT_EQ(x.grad().device(), device);
  return {f64_cpu(y.detach()), f64_cpu(x.grad())};
}

TEST(CudaParityReduce, SumAndMeanOverDims) {
  SSM_SKIP_WITHOUT_CUDA();
  const Case cases[] = {
      {{7, 13, 5}, {1}, false, "small K"},
      {{7, 13, 5}, {0, 2}, false, "permute"},
      {{7, 13, 5}, {-1, 0}, true, "permute keepdim"},
      {{7, 13, 5}, {}, false, "nothing reduced"},
      {{3, 1000, 33}, {1}, false, "columns chunked"},
      {{5, 100003}, {1}, true, "rows chunked"},
      {{100003}, {0}, false, "one row chunked"},
      {{4096, 768}, {0}, false, "bias gradient"},
      {{2, 3, 50280}, {0, 1, 2}, false, "all"},
      {{8, 1, 1}, {1, 2}, true, "size-1 dims"},
      {{64, 257}, {1}, false, "rows"},
      {{9, 300, 7}, {1}, false, "columns N<32"},
  };
  uint64_t seed = 21000;
  for (const Case& c : cases) {
    for (bool is_mean : {false, true}) {
      const Tensor x = ssm::testing::random(c.shape, DType::F64, seed++);
      const uint64_t dy_seed = seed++;
      const std::vector<Tensor> ref = run(x, c, is_mean, dy_seed, Device::CPU, DType::F64);
      for (DType dtype : {DType::F64, DType::F32}) {
        ssm::testing::PoisonDeviceMemory poison;
        const double bound = dtype == DType::F64 ? 1e-10 : 1e-5;
        const std::vector<Tensor> got = run(x, c, is_mean, dy_seed, Device::CUDA, dtype);
        double worst = 0;
        for (size_t i = 0; i < ref.size(); ++i) {
          const double e = rel_error(got[i], ref[i]);
          worst = std::max(worst, e);
          EXPECT_LT(e, bound) << (is_mean ? "mean " : "sum ") << shape_str(c.shape) << " " << c.path
                              << (i == 0 ? " value" : " gradient") << " " << dtype_name(dtype);
        }
        std::printf("parity %s %-14s %-18s %s worst rel err %.2e\n", is_mean ? "mean" : "sum ",
                    shape_str(c.shape).c_str(), c.path, dtype_name(dtype), worst);
      }
    }
  }
}

TEST(CudaParityReduce, EmptyReducedDimGivesZeroSumAndNanMean) {
  SSM_SKIP_WITHOUT_CUDA();
  ssm::testing::PoisonDeviceMemory poison;
  const Tensor x = Tensor::empty({0, 5}, DType::F32, Device::CUDA);
  const std::vector<double> s = sum(x, {0}).to(Device::CPU).to_vector();
  const std::vector<double> m = mean(x, {0}).to(Device::CPU).to_vector();
  ASSERT_EQ(s.size(), 5u);
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_EQ(s[i], 0.0);
    EXPECT_TRUE(std::isnan(m[i]));
  }
}

// The adjoint of broadcasting, on both entry points: sum_to_shape (the binary ops' backward) and
// reduce_to_shape (the engine's, e.g. expand's backward), including a strided gradient.
TEST(CudaParityReduce, SumToShapeAndReduceToShape) {
  SSM_SKIP_WITHOUT_CUDA();
  const std::pair<Shape, Shape> pairs[] = {
      {{4, 37, 33}, {33}},       {{4, 37, 33}, {4, 1, 33}}, {{4, 37, 33}, {1, 37, 1}},
      {{4, 37, 33}, {37, 1}},    {{4, 37, 33}, {}},         {{4, 37, 33}, {4, 37, 33}},
      {{2, 3, 4, 5}, {3, 1, 5}},
  };
  uint64_t seed = 22000;
  for (const auto& [from, to] : pairs) {
    const Tensor g = ssm::testing::random(from, DType::F64, seed++);
    const Tensor ref = reduce_to_shape(g, to);
    for (DType dtype : {DType::F64, DType::F32}) {
      ssm::testing::PoisonDeviceMemory poison;
      const double bound = dtype == DType::F64 ? 1e-10 : 1e-5;
      const Tensor gd = g.to(dtype).to(Device::CUDA);
      const Tensor a = sum_to_shape(gd, to), b = reduce_to_shape(gd, to);
      EXPECT_EQ(a.device(), Device::CUDA);
      EXPECT_EQ(b.device(), Device::CUDA);
      const double ea = rel_error(f64_cpu(a), ref), eb = rel_error(f64_cpu(b), ref);
      EXPECT_LT(ea, bound) << "sum_to_shape " << shape_str(from) << " -> " << shape_str(to);
      EXPECT_LT(eb, bound) << "reduce_to_shape " << shape_str(from) << " -> " << shape_str(to);
      std::printf("parity reduce_to_shape %-12s -> %-10s %s rel err %.2e / %.2e\n",
                  shape_str(from).c_str(), shape_str(to).c_str(), dtype_name(dtype), ea, eb);
    }
  }
  // A transposed (strided) gradient.
  const Tensor g = ssm::testing::random({33, 37, 4}, DType::F64, seed++);
  const Tensor gt = g.to(Device::CUDA).permute({2, 1, 0});  // (4, 37, 33), strided
  EXPECT_LT(rel_error(f64_cpu(reduce_to_shape(gt, {1, 37, 1})),
                      reduce_to_shape(g.permute({2, 1, 0}), {1, 37, 1})),
            1e-10);
  // expand's backward runs through reduce_to_shape on the device.
  Tensor x = ssm::testing::random({5, 1, 3}, DType::F64, seed++).to(Device::CUDA);
  x.requires_grad_();
  const Tensor dy = ssm::testing::random({2, 5, 7, 3}, DType::F64, seed++);
  x.expand({2, 5, 7, 3}).backward(dy.to(Device::CUDA));
  EXPECT_EQ(x.grad().device(), Device::CUDA);
  EXPECT_LT(rel_error(f64_cpu(x.grad()), reduce_to_shape(dy, {5, 1, 3})), 1e-10);
}

}  // namespace
