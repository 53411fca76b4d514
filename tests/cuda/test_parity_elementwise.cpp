// Elementwise ops, CUDA vs CPU: every unary op and every binary op, forward and the gradients of
// every operand through the autograd op, broadcasting over (B, L, D) + (D), (B, 1, D) · (1, L, 1),
// scalar-shaped operands, alternating broadcast dims and odd sizes; float64 to 1e-10 and float32
// (vs the float64 CPU result) to 1e-5, NaN-poisoned device memory; and the errors for operands on
// two devices and for broadcasts beyond the kernel's dims.
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "ssm/ops/elementwise.h"
#include "ssm/ops/reduce.h"
#include "support/cuda_testing.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

Tensor f64_cpu(const Tensor& t) {
  return t.to(Device::CPU).to(DType::F64);
}

// Values of shape `shape` in an op's domain: v = offset + scale · N(0, 1), or |·| for positives.
Tensor input(const Shape& shape, uint64_t seed, double scale, bool positive, bool away_from_zero) {
  std::vector<double> v = ssm::testing::random(shape, DType::F64, seed).to_vector();
  for (double& e : v) {
    if (positive)
      e = 0.2 + scale * std::abs(e);
    else if (away_from_zero)
      e = (e < 0 ? -1.0 : 1.0) * (0.5 + std::abs(e));
    else
      e = scale * e;
  }
  return Tensor::from_vector(v, shape, DType::F64);
}

// f on leaves made from `inputs` (converted to dtype, moved to device), then backward with dy.
// Returns the output and every input's gradient, as float64 CPU tensors.
std::vector<Tensor> run(const Fn& f, const std::vector<Tensor>& inputs, const Tensor& dy,
                        Device device, DType dtype) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) leaves.push_back(t.to(dtype).to(device).detach().requires_grad_());
  Tensor y = f(leaves);
  EXPECT_EQ(y.device(), device);
  y.backward(dy.to(dtype).to(device));
  std::vector<Tensor> r{f64_cpu(y.detach())};
  for (const Tensor& l : leaves) {
    EXPECT_TRUE(l.grad().defined());
    if (!l.grad().defined()) return r;
    EXPECT_EQ(l.grad().device(), device);
    r.push_back(f64_cpu(l.grad()));
  }
  return r;
}

double norm(const Tensor& t) {
  double s = 0;
  for (double v : t.to_vector()) s += v * v;
  return std::sqrt(s);
}

// Runs f on the CPU in float64 (the reference), then on CUDA in float64 and float32; checks every
// output and gradient against the bound of its dtype and prints the worst error of each.
//
// `floor_ulps` > 0 is for backward rules that read the forward output y where the derivative is a
// difference of numbers near 1 (tanh: 1 − y², sigmoid: y(1 − y)). Where the op saturates, that
// difference is tiny and carries the absolute rounding of y: y itself is within ε of the exact
// value on either device (ε = 2⁻²⁴ float32, 2⁻⁵³ float64, times the ulps of tanhf / expf), and
// |d(1 − y²)/dy| ≤ 2, |d(y(1 − y))/dy| ≤ 1. So a gradient may differ by floor_ulps · ε · |dy| in
// absolute terms, however small the exact gradient is: the check is
//   ‖got − ref‖ ≤ bound · ‖ref‖ + floor_ulps · ε · ‖dy‖.
void expect_parity(const std::string& what, const Fn& f, const std::vector<Tensor>& inputs,
                   uint64_t dy_seed, double floor_ulps = 0) {
  const Shape out_shape = f(inputs).shape();
  const Tensor dy = ssm::testing::random(out_shape, DType::F64, dy_seed);
  const std::vector<Tensor> ref = run(f, inputs, dy, Device::CPU, DType::F64);
  for (DType dtype : {DType::F64, DType::F32}) {
    ssm::testing::PoisonDeviceMemory poison;
    const double bound = dtype == DType::F64 ? 1e-10 : 1e-5;
    const double eps = dtype == DType::F64 ? 0x1p-53 : 0x1p-24;
    const std::vector<Tensor> got = run(f, inputs, dy, Device::CUDA, dtype);
    ASSERT_EQ(got.size(), ref.size()) << what;
    double worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      const double e = rel_error(got[i], ref[i]);
      worst = std::max(worst, e);
      const std::string where = what +
                                (i == 0 ? " output" : " gradient of input " + std::to_string(i)) +
                                " " + dtype_name(dtype);
      if (i == 0 || floor_ulps == 0) {
        EXPECT_LT(e, bound) << where;
      } else {
        const double diff = e * std::max(norm(ref[i]), 1e-300);
        EXPECT_LE(diff, bound * norm(ref[i]) + floor_ulps * eps * norm(dy))
            << where << ": rel err " << e;
      }
    }
    std::printf("parity %-44s %s worst rel err %.2e\n", what.c_str(), dtype_name(dtype), worst);
  }
}

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  double scale;       // input spread
  bool positive;      // log and sqrt need x > 0
  double floor_ulps;  // see expect_parity: the backward rule reads y and saturates
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, 3.0, false, 0},
      {"exp", [](const Tensor& x) { return exp(x); }, 3.0, false, 0},
      {"log", [](const Tensor& x) { return log(x); }, 2.0, true, 0},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, 2.0, true, 0},
      {"square", [](const Tensor& x) { return square(x); }, 3.0, false, 0},
      // Spread ±~40 so both sides of the x > 20 cut-off are taken.
      {"softplus", [](const Tensor& x) { return softplus(x); }, 12.0, false, 0},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, 3.0, false, 8},
      {"tanh", [](const Tensor& x) { return tanh(x); }, 3.0, false, 8},
      {"relu", [](const Tensor& x) { return relu(x); }, 3.0, false, 0},
      {"silu", [](const Tensor& x) { return silu(x); }, 3.0, false, 0},
      {"gelu_erf", [](const Tensor& x) { return gelu(x, GeluApprox::Erf); }, 3.0, false, 0},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, GeluApprox::Tanh); }, 3.0, false, 0},
      {"add_scalar", [](const Tensor& x) { return add_scalar(x, 2.5); }, 3.0, false, 0},
      {"mul_scalar", [](const Tensor& x) { return mul_scalar(x, -1.75); }, 3.0, false, 0},
  };
}

TEST(CudaParityElementwise, EveryUnaryOpForwardAndBackward) {
  SSM_SKIP_WITHOUT_CUDA();
  const Shape shapes[] = {{1}, {7}, {3, 129}, {5, 17, 33}, {70001}};
  uint64_t seed = 12000;
  for (const UnaryCase& c : unary_cases()) {
    for (const Shape& s : shapes) {
      const Tensor x = input(s, seed++, c.scale, c.positive, false);
      expect_parity(
          std::string(c.name) + " " + shape_str(s),
          [&c](const std::vector<Tensor>& in) { return c.op(in[0]); }, {x}, seed++, c.floor_ulps);
    }
  }
}

struct BinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
};

std::vector<BinaryCase> binary_cases() {
  return {{"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
          {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
          {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
          {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }}};
}

TEST(CudaParityElementwise, EveryBinaryOpWithBroadcasting) {
  SSM_SKIP_WITHOUT_CUDA();
  const std::pair<Shape, Shape> pairs[] = {
      {{3, 17, 33}, {3, 17, 33}},                   // same shapes (one flat dim)
      {{3, 17, 33}, {33}},                          // (B, L, D) + (D): a bias
      {{33}, {3, 17, 33}},                          // the same, operands swapped
      {{3, 1, 33}, {1, 17, 1}},                     // (B, 1, D) · (1, L, 1)
      {{5, 7}, {}},                                 // a scalar-shaped operand
      {{}, {5, 7}},                                 //
      {{1}, {9}},                                   //
      {{17, 1}, {17, 29}},                          // one value per row
      {{2, 1, 3, 1, 5, 1, 2}, {4, 1, 3, 1, 2, 1}},  // seven alternating dims (general walk)
      {{1, 1}, {1}},                                // a single element
      {{0, 3}, {3}},                                // empty
      {{4, 1001}, {4, 1}},                          //
  };
  uint64_t seed = 13000;
  for (const BinaryCase& c : binary_cases()) {
    for (const auto& [sa, sb] : pairs) {
      const bool is_div = std::string(c.name) == "div";
      const Tensor a = input(sa, seed++, 2.0, false, false);
      const Tensor b = input(sb, seed++, 2.0, false, is_div);  // divisors kept away from 0
      expect_parity(
          std::string(c.name) + " " + shape_str(sa) + " " + shape_str(sb),
          [&c](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); }, {a, b}, seed++);
    }
  }
}

// Strided views as inputs, and a chain of ops whose gradients meet on the device. (Gradients
// through narrow / select views are left out: Tensor::narrow's backward builds its result on the
// CPU. Their forward is checked below.)
TEST(CudaParityElementwise, StridedViewsAndChainedOps) {
  SSM_SKIP_WITHOUT_CUDA();
  const Tensor x = input({33, 17}, 14000, 2.0, false, false);
  const Tensor w = input({17}, 14001, 1.0, false, false);
  const Tensor z = input({3, 33, 17}, 14002, 2.0, false, false);
  expect_parity(
      "chain silu(xT)*w+gelu(zT)",
      [](const std::vector<Tensor>& in) {
        const Tensor xt = in[0].transpose(0, 1);     // (17, 33), strided
        const Tensor zt = in[2].permute({2, 1, 0});  // (17, 33, 3), strided
        const Tensor h =
            add(mul(silu(xt), in[1].unsqueeze(1)), gelu(mean(zt, {2}), GeluApprox::Tanh));
        return mul(h, sigmoid(h));  // h feeds two ops: its gradients are summed on the device
      },
      {x, w, z}, 14003);
  expect_parity(
      "mean of (x - mean_L x)^2 over L",
      [](const std::vector<Tensor>& in) {
        const Tensor c = sub(in[0], mean(in[0], {1}, true));
        return mean(square(c), {1});
      },
      {input({7, 129, 5}, 14004, 2.0, false, false)}, 14005);
  // Views with an offset (forward only).
  for (DType dtype : {DType::F64, DType::F32}) {
    ssm::testing::PoisonDeviceMemory poison;
    const Tensor zd = z.to(dtype).to(Device::CUDA);
    const Tensor got = mul(zd.select(0, 2).narrow(1, 3, 11), exp(zd.select(0, 1).narrow(1, 5, 11)));
    const Tensor ref = mul(z.select(0, 2).narrow(1, 3, 11), exp(z.select(0, 1).narrow(1, 5, 11)));
    EXPECT_LT(rel_error(f64_cpu(got), ref), dtype == DType::F64 ? 1e-10 : 1e-5);
  }
}

// Beyond 65536 blocks × 256 threads the kernels' grid-stride loop takes a second lap.
TEST(CudaParityElementwise, GridStrideLoopCoversLargeTensors) {
  SSM_SKIP_WITHOUT_CUDA();
  const int64_t n = (int64_t{65536} * 256) + 4099;
  expect_parity(
      "exp(a) + b over 16.8M", [](const std::vector<Tensor>& in) { return add(exp(in[0]), in[1]); },
      {input({n}, 15000, 1.0, false, false), input({n}, 15001, 1.0, false, false)}, 15002);
}

TEST(CudaParityElementwise, OperandsOnTwoDevicesAreRejected) {
  SSM_SKIP_WITHOUT_CUDA();
  const Tensor a = ssm::testing::random({3, 4}, DType::F32, 16000);
  const Tensor b = ssm::testing::random({4}, DType::F32, 16001).to(Device::CUDA);
  EXPECT_SSM_ERROR(add(a, b), "add:", "argument 'b'", "expected a cpu tensor", "got cuda");
  EXPECT_SSM_ERROR(mul(b, a), "mul:", "argument 'b'", "expected a cuda tensor", "got cpu");
  EXPECT_SSM_ERROR(div(a.to(Device::CUDA), a.to(DType::F64).to(Device::CUDA)),
                   "div:", "same dtype");
}

// Nine alternating broadcast dims do not fit the kernel's index (eight); the error says so.
TEST(CudaParityElementwise, TooManyAlternatingBroadcastDimsAreRejected) {
  SSM_SKIP_WITHOUT_CUDA();
  const Tensor a = Tensor::ones({2, 1, 2, 1, 2, 1, 2, 1, 2}).to(Device::CUDA);
  const Tensor b = Tensor::ones({2, 1, 2, 1, 2, 1, 2, 1}).to(Device::CUDA);
  EXPECT_SSM_ERROR(add(a, b), "add:", "at most 8");
}

}  // namespace
