// embedding, CUDA vs CPU: the gathered rows and the weight gradient (a scatter-add, so repeated
// ids accumulate) with ids on the CPU or the GPU, int32 and int64, odd vocabulary and row sizes,
// heavily repeated ids; NaN-poisoned device memory. An out-of-range id is an error naming it,
// whichever device the ids live on.
//
// Bounds: the forward copies rows, so it is exact (float32 differs from the float64 reference by
// the rounding of the weights, ~3e-8). The gradient sums up to ~400 rows per id here in float32
// (atomic adds, any order): ~√400·2^-24 ≈ 1.2e-6 relative, under the usual 1e-5; float64 1e-10.
#include <cstdio>
#include <string>
#include <vector>

#include "ssm/core/rng.h"
#include "ssm/ops/embedding.h"
#include "support/cuda_testing.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

Tensor f64_cpu(const Tensor& t) {
  return t.to(Device::CPU).to(DType::F64);
}

// ids (shape) uniform in [0, V) from a fresh generator, as int64 or int32.
Tensor random_ids(const Shape& shape, int64_t V, DType dtype, uint64_t seed) {
  Generator g(seed);
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (double& x : v) x = static_cast<double>(g.below(static_cast<uint64_t>(V)));
  return Tensor::from_vector(v, shape, dtype);
}

std::vector<Tensor> run(const Tensor& ids, const Tensor& w0, const Tensor& dy, Device ids_device,
                        Device device, DType dtype) {
  Tensor w = w0.to(dtype).to(device).detach().requires_grad_();
  Tensor y = embedding(ids.to(ids_device), w);
  EXPECT_EQ(y.device(), device);
  y.backward(dy.to(dtype).to(device));
  return {f64_cpu(y.detach()), f64_cpu(w.grad())};
}

TEST(CudaParityEmbedding, RowsAndWeightGradientMatchCpu) {
  SSM_SKIP_WITHOUT_CUDA();
  struct Case {
    int64_t V, D;
    Shape ids;
  };
  const Case cases[] = {{1, 1, {3}},        {37, 65, {4, 9}},    {1031, 769, {3, 700}},
                        {5, 33, {2, 1000}}, {50280, 8, {2, 37}}, {7, 1, {1}},
                        {11, 0, {6}}};
  uint64_t seed = 8100;
  for (const Case& c : cases) {
    const Tensor w0 = ssm::testing::random({c.V, c.D}, DType::F64, seed++);
    Shape y_shape = c.ids;
    y_shape.push_back(c.D);
    const Tensor dy = ssm::testing::random(y_shape, DType::F64, seed++);
    for (DType id_type : {DType::I64, DType::I32}) {
      const Tensor ids = random_ids(c.ids, c.V, id_type, seed++);
      const std::vector<Tensor> ref = run(ids, w0, dy, Device::CPU, Device::CPU, DType::F64);
      for (Device ids_device : {Device::CPU, Device::CUDA})
        for (DType dtype : {DType::F64, DType::F32}) {
          ssm::testing::PoisonDeviceMemory poison;
          const double bound = dtype == DType::F64 ? 1e-10 : 1e-5;
          const std::vector<Tensor> got = run(ids, w0, dy, ids_device, Device::CUDA, dtype);
          const double ey = rel_error(got[0], ref[0]), ew = rel_error(got[1], ref[1]);
          const std::string what = "V=" + std::to_string(c.V) + " D=" + std::to_string(c.D) +
                                   " ids " + shape_str(c.ids) + " " + dtype_name(id_type) + " on " +
                                   device_name(ids_device) + " " + dtype_name(dtype);
          EXPECT_LT(ey, bound) << "rows " << what;
          EXPECT_LT(ew, bound) << "weight gradient " << what;
          std::printf("parity embedding %s rows rel err %.2e, dW rel err %.2e\n", what.c_str(), ey,
                      ew);
        }
    }
  }
}

TEST(CudaParityEmbedding, OutOfRangeIdIsAnErrorOnEitherDevice) {
  SSM_SKIP_WITHOUT_CUDA();
  const Tensor w = ssm::testing::random({37, 5}, DType::F32, 8300).to(Device::CUDA);
  for (DType id_type : {DType::I64, DType::I32}) {
    Tensor ids = random_ids({2, 6}, 37, id_type, 8301);
    ids.set({0, 5}, 37);  // index 5: one past the end
    ids.set({1, 3}, -2);  // index 9: negative
    EXPECT_SSM_ERROR(embedding(ids, w), "embedding: argument 'ids' holds id 37 at index 5",
                     "[0, 37)");
    EXPECT_SSM_ERROR(embedding(ids.to(Device::CUDA), w),
                     "embedding: argument 'ids' holds id 37 at index 5", "[0, 37)");
    ids.set({0, 5}, 0);
    EXPECT_SSM_ERROR(embedding(ids.to(Device::CUDA), w),
                     "embedding: argument 'ids' holds id -2 at index 9");
    // The library still works after the error.
    ids.set({1, 3}, 36);
    EXPECT_EQ(embedding(ids.to(Device::CUDA), w).shape(), (Shape{2, 6, 5}));
  }
  const Tensor w_cpu = ssm::testing::random({37, 5}, DType::F32, 8302);
  EXPECT_SSM_ERROR(embedding(random_ids({4}, 37, DType::I64, 8303).to(Device::CUDA), w_cpu),
                   "embedding: argument 'ids' expected a cpu tensor (like weight), got cuda");
}

}  // namespace
