// softmax, log_softmax and cross_entropy, CUDA vs CPU: values and gradients over rows (vocabulary
// 50280 and odd sizes) and over strided axes, large logits, the cross-entropy's ignore_index and
// label smoothing, int32 / int64 targets on either device, all-ignored batches, and the same
// errors as the CPU op for out-of-range targets and non-finite rows. float64 to 1e-10, float32
// (vs the float64 CPU result) to 1e-5, NaN-poisoned device memory.
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "ssm/core/rng.h"
#include "ssm/ops/loss.h"
#include "ssm/ops/norm.h"
#include "support/cuda_testing.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

Tensor f64_cpu(const Tensor& t) {
  return t.to(Device::CPU).to(DType::F64);
}

// Logits 3 · N(0, 1) (float64, CPU): rows with a clear maximum and a long tail.
Tensor spread_logits(const Shape& shape, uint64_t seed) {
  std::vector<double> v = ssm::testing::random(shape, DType::F64, seed).to_vector();
  for (double& e : v) e *= 3.0;
  return Tensor::from_vector(v, shape, DType::F64);
}

// ---------------------------------------------------------------- softmax

std::vector<Tensor> run_softmax(const Tensor& x0, int64_t dim, bool log, const Tensor& dy,
                                Device device, DType dtype) {
  Tensor x = x0.to(dtype).to(device).detach().requires_grad_();
  Tensor y = log ? log_softmax(x, dim) : softmax(x, dim);
  EXPECT_EQ(y.device(), device);
  y.backward(dy.to(dtype).to(device));
  EXPECT_EQ(x.grad().device(), device);
  return {f64_cpu(y.detach()), f64_cpu(x.grad())};
}

TEST(CudaParitySoftmax, RowsAndStridedAxesForwardAndBackward) {
  SSM_SKIP_WITHOUT_CUDA();
  struct Case {
    Shape shape;
    int64_t dim;
  };
  const Case cases[] = {{{1, 1}, -1},    {{7, 50280}, -1}, {{33, 1}, -1},
                        {{5, 129}, -1},  {{5, 129}, 0},    {{3, 17, 5}, 1},
                        {{4, 2049}, -1}, {{2, 3, 300}, 1}, {{1000, 10}, 1}};
  uint64_t seed = 31000;
  for (const Case& c : cases) {
    for (bool log : {false, true}) {
      const Tensor x = spread_logits(c.shape, seed++);
      const Tensor dy = ssm::testing::random(c.shape, DType::F64, seed++);
      const std::vector<Tensor> ref = run_softmax(x, c.dim, log, dy, Device::CPU, DType::F64);
      for (DType dtype : {DType::F64, DType::F32}) {
        ssm::testing::PoisonDeviceMemory poison;
        const double bound = dtype == DType::F64 ? 1e-10 : 1e-5;
        const std::vector<Tensor> got = run_softmax(x, c.dim, log, dy, Device::CUDA, dtype);
        double worst = 0;
        for (size_t i = 0; i < ref.size(); ++i) {
          const double e = rel_error(got[i], ref[i]);
          worst = std::max(worst, e);
          EXPECT_LT(e, bound) << (log ? "log_softmax " : "softmax ") << shape_str(c.shape)
                              << " dim " << c.dim << (i == 0 ? " value" : " gradient") << " "
                              << dtype_name(dtype);
        }
        std::printf("parity %-11s %-12s dim %2lld %s worst rel err %.2e\n",
                    log ? "log_softmax" : "softmax", shape_str(c.shape).c_str(), (long long)c.dim,
                    dtype_name(dtype), worst);
      }
    }
  }
}

// exp(1000) overflows: only the max-subtracted form gives finite values. The inputs are rounded
// to float32 once, and both devices see the same rounded values.
TEST(CudaParitySoftmax, LargeLogitsStayFinite) {
  SSM_SKIP_WITHOUT_CUDA();
  ssm::testing::PoisonDeviceMemory poison;
  std::vector<double> v = ssm::testing::random({6, 1001}, DType::F64, 32000).to_vector();
  for (size_t i = 0; i < v.size(); ++i) v[i] = 3.0 * v[i] + (i < v.size() / 2 ? 1000.0 : -1000.0);
  const Tensor x = Tensor::from_vector(v, {6, 1001}, DType::F32);
  for (bool log : {false, true}) {
    const Tensor ref = log ? log_softmax(x.to(DType::F64)) : softmax(x.to(DType::F64));
    const Tensor got = log ? log_softmax(x.to(Device::CUDA)) : softmax(x.to(Device::CUDA));
    const double e = rel_error(f64_cpu(got), ref);
    EXPECT_LT(e, 1e-5) << (log ? "log_softmax" : "softmax");
    std::printf("parity %s logits ±1000 float32 rel err %.2e\n", log ? "log_softmax" : "softmax",
                e);
  }
}

// ---------------------------------------------------------------- cross-entropy

Tensor index_tensor(const std::vector<int64_t>& v, const Shape& shape, DType dtype) {
  if (dtype == DType::I64) return Tensor::from_data<int64_t>(v, shape);
  return Tensor::from_data<int32_t>(std::vector<int32_t>(v.begin(), v.end()), shape);
}

// Class ids in [0, C), every `ignore_every`-th (from the second) set to ignore_index.
std::vector<int64_t> class_ids(int64_t n, int64_t C, uint64_t seed, int64_t ignore_every,
                               int64_t ignore_index) {
  Generator g(seed);
  std::vector<int64_t> t(n);
  for (int64_t i = 0; i < n; ++i)
    t[i] =
        ignore_every > 0 && i % ignore_every == 1 ? ignore_index : static_cast<int64_t>(g.below(C));
  return t;
}

struct XentSetup {
  int64_t ignore_index;
  double smoothing;
  double seed_grad;  // 0: implicit backward() (a CPU 1), else this value as a CUDA seed
};

std::vector<Tensor> run_xent(const Tensor& logits0, const Tensor& targets, const XentSetup& s,
                             Device device, DType dtype) {
  Tensor x = logits0.to(dtype).to(device).detach().requires_grad_();
  Tensor loss = cross_entropy(x, targets, s.ignore_index, s.smoothing);
  EXPECT_EQ(loss.device(), device);
  EXPECT_EQ(loss.dim(), 0);
  if (s.seed_grad == 0.0)
    loss.backward();
  else
    loss.backward(Tensor::scalar(s.seed_grad, dtype).to(device));
  EXPECT_EQ(x.grad().device(), device);
  return {f64_cpu(loss.detach()), f64_cpu(x.grad())};
}

TEST(CudaParityCrossEntropy, LossAndGradientMatchCpu) {
  SSM_SKIP_WITHOUT_CUDA();
  // (One class would make every gradient an exact 0 that float32 rounding need not reproduce.)
  const Shape shapes[] = {{1, 3}, {37, 10}, {3, 5, 7}, {64, 50280}, {33, 1001}};
  const XentSetup setups[] = {{-100, 0.0, 0.0}, {-100, 0.1, 0.37}, {0, 0.0, 0.37}};
  uint64_t seed = 33000;
  int combo = 0;  // picks the target dtype; with the logits dtype, the targets' device
  for (const Shape& shape : shapes) {
    const int64_t C = shape.back(), N = shape_numel(shape) / C;
    const Shape row_shape(shape.begin(), shape.end() - 1);
    for (const XentSetup& s : setups) {
      for (int64_t ignore_every : {0, 3}) {
        const Tensor x = spread_logits(shape, seed++);
        // ignore_index 0 is also a class id: rows whose draw is 0 are ignored too.
        const std::vector<int64_t> ids = class_ids(N, C, seed++, ignore_every, s.ignore_index);
        const DType index_dtype = combo % 2 == 0 ? DType::I64 : DType::I32;
        const bool targets_on_cuda_for_f64 = (combo++ / 2) % 2 == 0;
        const Tensor t_cpu = index_tensor(ids, row_shape, index_dtype);
        const std::vector<Tensor> ref = run_xent(x, t_cpu, s, Device::CPU, DType::F64);
        for (DType dtype : {DType::F64, DType::F32}) {
          ssm::testing::PoisonDeviceMemory poison;
          const double bound = dtype == DType::F64 ? 1e-10 : 1e-5;
          // Targets alternate between the CPU and the GPU.
          const bool on_cuda = targets_on_cuda_for_f64 == (dtype == DType::F64);
          const Tensor t = on_cuda ? t_cpu.to(Device::CUDA) : t_cpu;
          const std::vector<Tensor> got = run_xent(x, t, s, Device::CUDA, dtype);
          const double e_loss = rel_error(got[0], ref[0]), e_grad = rel_error(got[1], ref[1]);
          const std::string what =
              "cross_entropy " + shape_str(shape) + " ignore_index " +
              std::to_string(s.ignore_index) + " every " + std::to_string(ignore_every) + " eps " +
              std::to_string(s.smoothing) + " " + dtype_name(dtype) + " targets " +
              dtype_name(t.dtype()) + " on " + device_name(t.device());
          EXPECT_LT(e_loss, bound) << what << " loss";
          EXPECT_LT(e_grad, bound) << what << " gradient";
          std::printf("parity %-96s loss %.2e grad %.2e\n", what.c_str(), e_loss, e_grad);
        }
      }
    }
  }
}

TEST(CudaParityCrossEntropy, AllIgnoredGivesZeroLossAndZeroGradient) {
  SSM_SKIP_WITHOUT_CUDA();
  ssm::testing::PoisonDeviceMemory poison;
  Tensor x = spread_logits({9, 13}, 34000).to(DType::F32).to(Device::CUDA);
  x.requires_grad_();
  const Tensor t = index_tensor(std::vector<int64_t>(9, -100), {9}, DType::I64);
  Tensor loss = cross_entropy(x, t);
  EXPECT_EQ(loss.to(Device::CPU).item(), 0.0);
  loss.backward();
  for (double g : x.grad().to(Device::CPU).to_vector()) EXPECT_EQ(g, 0.0);
}

// Targets on the GPU serve CPU logits too (they are copied over).
TEST(CudaParityCrossEntropy, CpuLogitsTakeCudaTargets) {
  SSM_SKIP_WITHOUT_CUDA();
  const Tensor x = spread_logits({11, 7}, 34500);
  const Tensor t = index_tensor(class_ids(11, 7, 34501, 4, -100), {11}, DType::I32);
  EXPECT_EQ(cross_entropy(x, t.to(Device::CUDA), -100, 0.1).item(),
            cross_entropy(x, t, -100, 0.1).item());
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// The CUDA op raises the CPU op's errors, word for word, for targets on either device.
TEST(CudaParityCrossEntropy, BadTargetsAndNonFiniteRowsGiveTheCpuErrors) {
  SSM_SKIP_WITHOUT_CUDA();
  const Tensor x = spread_logits({6, 10}, 35000);
  for (int64_t bad : {12, -5, 10}) {
    std::vector<int64_t> ids{1, 2, 3, 4, 5, 6};
    ids[3] = bad;
    ids[5] = bad + 1;  // only the first bad row is named
    for (DType index_dtype : {DType::I64, DType::I32}) {
      const Tensor t = index_tensor(ids, {6}, index_dtype);
      const std::string expected = error_of([&] { cross_entropy(x, t); });
      EXPECT_NE(expected.find("holds class id " + std::to_string(bad) + " at index 3"),
                std::string::npos)
          << expected;
      for (const Tensor& td : {t, t.to(Device::CUDA)})
        EXPECT_EQ(error_of([&] { cross_entropy(x.to(Device::CUDA), td); }), expected);
    }
  }
  for (double poison_value : {NAN, INFINITY}) {
    Tensor y = x.clone();
    y.set({2, 7}, poison_value);
    y.set({4, 0}, poison_value);
    const Tensor t = index_tensor({1, 2, 3, 4, 5, 6}, {6}, DType::I64);
    const std::string expected = error_of([&] { cross_entropy(y, t); });
    EXPECT_NE(expected.find("row 2 is not finite"), std::string::npos) << expected;
    EXPECT_EQ(error_of([&] { cross_entropy(y.to(Device::CUDA), t); }), expected);
    EXPECT_EQ(error_of([&] { cross_entropy(y.to(DType::F32).to(Device::CUDA), t); }), expected);
  }
}

}  // namespace
