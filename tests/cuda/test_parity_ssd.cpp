// ssd (Mamba-2), CUDA vs CPU: y, the final state and the gradients of all seven inputs through
// the autograd op (dy and dfinal_state both random), odd sizes (L not a multiple of the chunk,
// P and N not powers of two, grouped B/C), L from 1 to 16384, NaN-poisoned device memory.
// float64 to 1e-10; float32 against the float64 CPU result to 1e-5: every sum is short (≤ Q, N,
// P, or heads per group terms) except the chunk-state scan, whose terms decay geometrically, and
// dA / dD, whose long sums (B·L terms) are accumulated in double on the device. Every case has
// an initial state or L > 1: at L = 1 from a zero state, A has no effect and dA is exactly 0 on
// the CPU but O(1e-20) on the device (FMA-contracted cancelling terms), an undefined relative
// error.
#include <cmath>
#include <cstdio>
#include <vector>

#include "ssm/autograd/node.h"
#include "ssm/ops/ssd.h"
#include "support/cuda_testing.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

struct Case {
  int64_t batch, len, heads, groups, head_dim, state, chunk;
  bool with_d, with_init;
};

// Inputs in float64 on the CPU: dt ∈ (0.01, 0.21), A ∈ (−2.5, −0.5), the rest normal.
std::vector<Tensor> make_inputs(const Case& c, uint64_t seed) {
  auto rnd = [&](const Shape& s) { return ssm::testing::random(s, DType::F64, seed++); };
  auto squash = [](Tensor t, double lo, double hi) {
    std::vector<double> v = t.to_vector();
    for (double& e : v) e = lo + (hi - lo) / (1 + std::exp(-e));
    return Tensor::from_vector(v, t.shape(), DType::F64);
  };
  return {rnd({c.batch, c.len, c.heads, c.head_dim}),
          squash(rnd({c.batch, c.len, c.heads}), 0.01, 0.21),
          squash(rnd({c.heads}), -2.5, -0.5),
          rnd({c.batch, c.len, c.groups, c.state}),
          rnd({c.batch, c.len, c.groups, c.state}),
          c.with_d ? rnd({c.heads}) : Tensor(),
          c.with_init ? rnd({c.batch, c.heads, c.head_dim, c.state}) : Tensor(),
          rnd({c.batch, c.len, c.heads, c.head_dim}),
          rnd({c.batch, c.heads, c.head_dim, c.state})};
}

// y, final state, then the gradients of x, dt, A, B, C, D, initial state (those present).
std::vector<Tensor> run(const Case& c, const std::vector<Tensor>& in, Device device, DType dtype) {
  std::vector<Tensor> leaves;
  for (int i = 0; i < 7; ++i)
    leaves.push_back(in[i].defined() ? in[i].to(dtype).to(device).detach().requires_grad_()
                                     : Tensor());
  SsdOptions opt;
  opt.D = leaves[5];
  opt.initial_state = leaves[6];
  opt.chunk_size = c.chunk;
  SsdResult r = ssd(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], opt);
  EXPECT_EQ(r.y.device(), device);
  run_backward({r.y, r.final_state}, {in[7].to(dtype).to(device), in[8].to(dtype).to(device)},
               false);
  auto f64 = [](const Tensor& t) { return t.to(Device::CPU).to(DType::F64); };
  std::vector<Tensor> out{f64(r.y.detach()), f64(r.final_state.detach())};
  for (const Tensor& l : leaves)
    if (l.defined()) out.push_back(f64(l.grad()));
  return out;
}

const char* const kNames[] = {"y", "final_state", "dx", "ddt", "dA", "dB", "dC", "dD", "dinit"};

void check(const Case& c, uint64_t seed) {
  const std::vector<Tensor> in = make_inputs(c, seed);
  const std::vector<Tensor> ref = run(c, in, Device::CPU, DType::F64);
  for (DType dtype : {DType::F64, DType::F32}) {
    ssm::testing::PoisonDeviceMemory poison;
    const double bound = dtype == DType::F64 ? 1e-10 : 1e-5;
    const std::vector<Tensor> got = run(c, in, Device::CUDA, dtype);
    ASSERT_EQ(got.size(), ref.size());
    double worst = 0;
    const char* worst_name = "";
    for (size_t i = 0; i < ref.size(); ++i) {
      const char* name = kNames[i < 7 || c.with_d ? i : i + 1];
      const double e = rel_error(got[i], ref[i]);
      if (e >= worst) worst = e, worst_name = name;
      EXPECT_LT(e, bound) << name << " B=" << c.batch << " L=" << c.len << " H=" << c.heads
                          << " G=" << c.groups << " P=" << c.head_dim << " N=" << c.state
                          << " Q=" << c.chunk << " " << dtype_name(dtype);
    }
    std::printf(
        "parity ssd B=%lld L=%lld H=%lld G=%lld P=%lld N=%lld Q=%lld D=%d init=%d %s worst rel err "
        "%.2e (%s)\n",
        (long long)c.batch, (long long)c.len, (long long)c.heads, (long long)c.groups,
        (long long)c.head_dim, (long long)c.state, (long long)c.chunk, c.with_d, c.with_init,
        dtype_name(dtype), worst, worst_name);
  }
}

TEST(CudaParitySsd, OddSizesShortToLong) {
  SSM_SKIP_WITHOUT_CUDA();
  const Case cases[] = {
      {1, 1, 1, 1, 1, 1, 128, true, true},    {2, 37, 4, 2, 5, 7, 16, true, true},
      {1, 200, 3, 1, 9, 13, 64, true, false}, {2, 1000, 2, 2, 3, 5, 128, false, true},
      {3, 129, 6, 3, 17, 33, 32, true, true}, {1, 16384, 2, 1, 4, 6, 128, true, true},
  };
  uint64_t seed = 12000;
  for (const Case& c : cases) {
    check(c, seed);
    seed += 100;
  }
}

TEST(CudaParitySsd, MixedDevicesAreRejected) {
  SSM_SKIP_WITHOUT_CUDA();
  const Case c{1, 5, 2, 1, 3, 4, 4, false, false};
  const std::vector<Tensor> in = make_inputs(c, 12900);
  EXPECT_SSM_ERROR(ssd(in[0].to(Device::CUDA), in[1], in[2], in[3], in[4]), "ssd", "cpu");
}

}  // namespace
