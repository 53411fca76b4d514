// matmul and linear, CUDA (cuBLAS) vs CPU: forward and the gradient of every input through the
// autograd op, on 2-d, batched and broadcast shapes, transposed and strided operand views, odd
// sizes (1×1×1, 7×33×65, 129×768×1537, K = 0, no rows), with NaN-poisoned device memory.
//
// Bounds (relative Frobenius error against the float64 CPU result on the same float64 inputs):
// - float64: 1e-10 (rounding of a length-K dot product is ~√K·1e-16, far below).
// - float32: 1e-5. Rounding the inputs to float32 costs ~2^-24 relative; a length-K dot product
//   of random-sign terms accumulates rounding errors like a random walk, ~√K·2^-24 relative to
//   the result: 2.3e-6 at the largest reduction here (K = 1537, the dX of 129×768×1537), so
//   1e-5 leaves a 4× margin.
// - TF32 (SSM_CUDA_TF32=1): 2e-3. TF32 keeps 10 of float32's 23 mantissa bits, so rounding an
//   input costs up to 2^-11 ≈ 4.9e-4 relative (round to nearest; 2^-10 if truncated), a product of
//   two rounded inputs up to twice that. Over K random-sign terms the errors average like above,
//   so the result is off by about the per-term RMS, ~4e-4 of its norm (~1e-3 if truncated, whose
//   errors do not cancel in sign); 2e-3 covers truncation with a 2× margin. The TF32 test also
//   checks the error is well above the float32 one, i.e. the switch reached cuBLAS.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ssm/autograd/node.h"
#include "ssm/ops/linear.h"
#include "support/cuda_testing.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

constexpr double kBoundF64 = 1e-10, kBoundF32 = 1e-5, kBoundTF32 = 2e-3;

Tensor f64_cpu(const Tensor& t) {
  return t.to(Device::CPU).to(DType::F64);
}

// How an operand's memory is laid out: contiguous; the transpose of a contiguous (…, cols, rows)
// tensor (the view x.transpose(-1, -2)); every other element of a (…, rows, cols, 2) tensor whose
// other elements are NaN (a view cuBLAS cannot read, so it must be copied first).
enum class View { Plain, Transposed, Strided };

const char* view_name(View v) {
  return v == View::Plain ? "plain" : v == View::Transposed ? "transposed" : "strided";
}

// A leaf holding `values` (float64, CPU) as `dtype` on `device`, with the memory layout `view`.
Tensor make_leaf(const Tensor& values, View view, Device device, DType dtype) {
  const Tensor v = values.to(dtype);
  Tensor t;
  if (view == View::Plain || v.dim() < 2) {
    t = v.to(device);
  } else if (view == View::Transposed) {
    t = v.transpose(-1, -2).contiguous().to(device).transpose(-1, -2);
  } else {
    Shape s = v.shape();
    s.push_back(2);
    Tensor pair = Tensor::empty(s, dtype);
    pair.select(-1, 0).copy_(v);
    pair.select(-1, 1).fill_(NAN);
    t = pair.to(device).select(-1, 0);
  }
  return t.detach().requires_grad_();
}

// Output and gradients (float64, CPU) of one run.
std::vector<Tensor> collect(const Tensor& y, const std::vector<Tensor>& leaves) {
  std::vector<Tensor> r{f64_cpu(y.detach())};
  for (const Tensor& l : leaves) r.push_back(f64_cpu(l.grad()));
  return r;
}

// Compares a run with the reference; returns the worst relative error.
double compare(const std::vector<Tensor>& got, const std::vector<Tensor>& ref, double bound,
               const std::string& what) {
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = rel_error(got[i], ref[i]);
    worst = std::max(worst, e);
    EXPECT_LT(e, bound) << what << (i == 0 ? " output" : " gradient of input ") << i;
  }
  return worst;
}

// SSM_CUDA_TF32=1 for the lifetime of the guard.
struct Tf32Env {
  Tf32Env() { setenv("SSM_CUDA_TF32", "1", 1); }
  ~Tf32Env() { unsetenv("SSM_CUDA_TF32"); }
};

struct MatmulCase {
  const char* name;
  Shape a, b;
  View va = View::Plain, vb = View::Plain;
};

std::vector<Tensor> run_matmul(const MatmulCase& c, const std::vector<Tensor>& in, Device device,
                               DType dtype) {
  const View va = device == Device::CPU ? View::Plain : c.va;
  const View vb = device == Device::CPU ? View::Plain : c.vb;
  Tensor a = make_leaf(in[0], va, device, dtype), b = make_leaf(in[1], vb, device, dtype);
  Tensor y = matmul(a, b);
  EXPECT_EQ(y.device(), device);
  y.backward(in[2].to(dtype).to(device));
  return collect(y, {a, b});
}

const MatmulCase kMatmulCases[] = {
    {"2d", {1, 1}, {1, 1}},
    {"2d", {7, 33}, {33, 65}},
    {"2d", {129, 768}, {768, 1537}},
    {"2d", {7, 33}, {33, 65}, View::Transposed, View::Plain},
    {"2d", {129, 768}, {768, 1537}, View::Plain, View::Transposed},
    {"2d", {7, 33}, {33, 65}, View::Transposed, View::Transposed},
    {"2d", {7, 33}, {33, 65}, View::Strided, View::Plain},
    {"2d", {7, 33}, {33, 65}, View::Plain, View::Strided},
    {"2d K=0", {3, 0}, {0, 4}},
    {"batched", {3, 7, 33}, {3, 33, 65}},
    {"batched", {3, 7, 33}, {3, 33, 65}, View::Transposed, View::Plain},
    {"batched", {3, 7, 33}, {3, 33, 65}, View::Plain, View::Transposed},
    {"batched M=N=1", {5, 1, 17}, {5, 17, 1}},
    {"b shared (one tall GEMM)", {2, 3, 7, 33}, {33, 65}},
    {"b shared, a transposed", {2, 3, 7, 33}, {33, 65}, View::Transposed, View::Plain},
    {"b shared, a strided", {2, 3, 7, 33}, {1, 33, 65}, View::Strided, View::Plain},
    {"b broadcast over dim 0", {2, 3, 7, 33}, {3, 33, 65}},
    {"a broadcast (2-d)", {7, 33}, {5, 33, 65}},
    {"both broadcast", {4, 1, 5, 9}, {1, 3, 9, 6}},
    {"both broadcast", {4, 1, 5, 9}, {1, 3, 9, 6}, View::Transposed, View::Transposed},
    {"both broadcast, 3 batch dims", {2, 1, 3, 4, 5}, {3, 1, 5, 6}, View::Plain, View::Transposed},
};

std::vector<Tensor> matmul_inputs(const MatmulCase& c, uint64_t& seed) {
  const Tensor a = ssm::testing::random(c.a, DType::F64, seed++);
  const Tensor b = ssm::testing::random(c.b, DType::F64, seed++);
  Shape y_shape;
  {
    NoGradGuard no_grad;
    y_shape = matmul(a, b).shape();
  }
  return {a, b, ssm::testing::random(y_shape, DType::F64, seed++)};
}

TEST(CudaParityLinear, MatmulMatchesCpu) {
  SSM_SKIP_WITHOUT_CUDA();
  uint64_t seed = 4100;
  for (const MatmulCase& c : kMatmulCases) {
    const std::vector<Tensor> in = matmul_inputs(c, seed);
    const std::vector<Tensor> ref = run_matmul(c, in, Device::CPU, DType::F64);
    for (DType dtype : {DType::F64, DType::F32}) {
      ssm::testing::PoisonDeviceMemory poison;
      const std::string what = std::string("matmul ") + c.name + " " + shape_str(c.a) + " @ " +
                               shape_str(c.b) + " a " + view_name(c.va) + " b " + view_name(c.vb) +
                               " " + dtype_name(dtype);
      const double worst = compare(run_matmul(c, in, Device::CUDA, dtype), ref,
                                   dtype == DType::F64 ? kBoundF64 : kBoundF32, what);
      std::printf("parity %s worst rel err %.2e\n", what.c_str(), worst);
    }
  }
}

struct LinearCase {
  const char* name;
  Shape x;
  int64_t out;
  bool bias;
  View vx = View::Plain, vw = View::Plain;
};

std::vector<Tensor> run_linear(const LinearCase& c, const std::vector<Tensor>& in, Device device,
                               DType dtype) {
  const View vx = device == Device::CPU ? View::Plain : c.vx;
  const View vw = device == Device::CPU ? View::Plain : c.vw;
  Tensor x = make_leaf(in[0], vx, device, dtype), w = make_leaf(in[1], vw, device, dtype);
  Tensor b = c.bias ? make_leaf(in[2], View::Plain, device, dtype) : Tensor();
  Tensor y = linear(x, w, b);
  EXPECT_EQ(y.device(), device);
  y.backward(in[3].to(dtype).to(device));
  return c.bias ? collect(y, {x, w, b}) : collect(y, {x, w});
}

const LinearCase kLinearCases[] = {
    {"1x1x1", {1, 1}, 1, true},
    {"7x33x65", {7, 33}, 65, true},
    {"7x33x65 no bias", {7, 33}, 65, false},
    {"129x768x1537", {129, 768}, 1537, true},
    {"leading dims", {2, 3, 7, 33}, 65, true},
    {"1-d x", {33}, 65, true},
    {"x transposed", {7, 33}, 65, true, View::Transposed, View::Plain},
    {"W transposed", {7, 33}, 65, false, View::Plain, View::Transposed},
    {"x strided, leading dims", {2, 7, 33}, 65, true, View::Strided, View::Plain},
    {"tall (column sums in chunks)", {4099, 64}, 97, true},
    {"no rows", {0, 33}, 65, true},
    {"in = 0", {5, 0}, 4, true},
};

std::vector<Tensor> linear_inputs(const LinearCase& c, uint64_t& seed) {
  Shape y_shape = c.x;
  y_shape.back() = c.out;
  return {ssm::testing::random(c.x, DType::F64, seed++),
          ssm::testing::random({c.out, c.x.back()}, DType::F64, seed++),
          ssm::testing::random({c.out}, DType::F64, seed++),
          ssm::testing::random(y_shape, DType::F64, seed++)};
}

TEST(CudaParityLinear, LinearMatchesCpu) {
  SSM_SKIP_WITHOUT_CUDA();
  uint64_t seed = 4600;
  for (const LinearCase& c : kLinearCases) {
    const std::vector<Tensor> in = linear_inputs(c, seed);
    const std::vector<Tensor> ref = run_linear(c, in, Device::CPU, DType::F64);
    for (DType dtype : {DType::F64, DType::F32}) {
      ssm::testing::PoisonDeviceMemory poison;
      const std::string what = std::string("linear ") + c.name + " x " + shape_str(c.x) + " out " +
                               std::to_string(c.out) + " x " + view_name(c.vx) + " W " +
                               view_name(c.vw) + " " + dtype_name(dtype);
      const double worst = compare(run_linear(c, in, Device::CUDA, dtype), ref,
                                   dtype == DType::F64 ? kBoundF64 : kBoundF32, what);
      std::printf("parity %s worst rel err %.2e\n", what.c_str(), worst);
    }
  }
}

// SSM_CUDA_TF32=1: float32 GEMMs on the tensor cores, within TF32's bound and clearly less exact
// than the default float32 path (so the switch took effect).
TEST(CudaParityLinear, Tf32IsOptInAndWithinItsBound) {
  SSM_SKIP_WITHOUT_CUDA();
  uint64_t seed = 4900;
  const MatmulCase mc{"2d", {129, 768}, {768, 1537}};
  const LinearCase lc{"129x768x1537", {2, 129, 768}, 1537, true, View::Plain, View::Plain};
  const std::vector<Tensor> min = matmul_inputs(mc, seed), lin = linear_inputs(lc, seed);
  const std::vector<Tensor> mref = run_matmul(mc, min, Device::CPU, DType::F64);
  const std::vector<Tensor> lref = run_linear(lc, lin, Device::CPU, DType::F64);
  ssm::testing::PoisonDeviceMemory poison;
  const double m32 = compare(run_matmul(mc, min, Device::CUDA, DType::F32), mref, kBoundF32,
                             "matmul f32"),
               l32 = compare(run_linear(lc, lin, Device::CUDA, DType::F32), lref, kBoundF32,
                             "linear f32");
  double mtf = 0, ltf = 0;
  {
    Tf32Env tf32;
    mtf = compare(run_matmul(mc, min, Device::CUDA, DType::F32), mref, kBoundTF32, "matmul tf32");
    ltf = compare(run_linear(lc, lin, Device::CUDA, DType::F32), lref, kBoundTF32, "linear tf32");
  }
  EXPECT_GT(mtf, 10 * m32) << "SSM_CUDA_TF32=1 did not change the matmul's arithmetic";
  EXPECT_GT(ltf, 10 * l32) << "SSM_CUDA_TF32=1 did not change the linear's arithmetic";
  // Back to exact float32 once the variable is gone.
  EXPECT_LT(compare(run_matmul(mc, min, Device::CUDA, DType::F32), mref, kBoundF32, "matmul f32"),
            kBoundF32);
  std::printf("parity tf32 matmul 129x768x1537 worst rel err %.2e (f32 %.2e)\n", mtf, m32);
  std::printf("parity tf32 linear (2,129,768)->1537 worst rel err %.2e (f32 %.2e)\n", ltf, l32);
}

TEST(CudaParityLinear, OperandsOnTwoDevicesAreAnError) {
  SSM_SKIP_WITHOUT_CUDA();
  const Tensor a = ssm::testing::random({3, 4}, DType::F32, 5000);
  const Tensor b = ssm::testing::random({4, 5}, DType::F32, 5001);
  const Tensor w = ssm::testing::random({5, 4}, DType::F32, 5002);
  const Tensor bias = ssm::testing::random({5}, DType::F32, 5003);
  const Tensor ad = a.to(Device::CUDA), bd = b.to(Device::CUDA), wd = w.to(Device::CUDA);
  EXPECT_SSM_ERROR(matmul(ad, b), "matmul: argument 'b' expected a cuda tensor (like a), got cpu");
  EXPECT_SSM_ERROR(matmul(a, bd), "matmul: argument 'b' expected a cpu tensor (like a), got cuda");
  EXPECT_SSM_ERROR(linear(ad, w), "linear: argument 'weight' expected a cuda tensor");
  EXPECT_SSM_ERROR(linear(ad, wd, bias), "linear: argument 'bias' expected a cuda tensor");
  EXPECT_SSM_ERROR(linear(a, wd), "linear: argument 'weight' expected a cpu tensor");
}

}  // namespace
