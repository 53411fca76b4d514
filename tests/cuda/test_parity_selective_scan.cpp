// Selective scan, CUDA vs CPU: forward and backward kernels on fresh random inputs of odd sizes
// (L from 1 to 64k, not multiples of the 1024-step chunk; N and D not powers of two), strided
// inputs, the autograd op on device tensors, and bad inputs. Device outputs are NaN-poisoned
// before every run. float64 on the device must match the float64 CPU kernel to 1e-10; float32 on
// the device is compared with the float64 CPU result (its own rounding only) to 1e-5.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "ssm/core/rng.h"
#include "ssm/kernels/selective_scan.h"
#include "ssm/ops/selective_scan.h"
#include "support/cuda_testing.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;
using ssm::testing::to_device;

namespace {

namespace k = kernels;

struct Case {
  int64_t batch, dim, groups, state, len;
  bool options = true;  // D, z, delta_bias, initial_state, softplus
};

Tensor draw(const Shape& shape, Generator& g, double scale, double shift, bool absolute = false) {
  std::vector<double> v(shape_numel(shape));
  for (double& x : v) {
    const double r = g.normal();
    x = shift + scale * (absolute ? std::fabs(r) : r);
  }
  return Tensor::from_vector(v, shape, DType::F64);
}

// Inputs in the ranges a trained Mamba sees: dt = softplus(delta + bias) around 0.05..0.7,
// A = −(0.3 + |N(0, 1)|), everything else standard normal.
k::cpu::SelectiveScanInputs make_inputs(const Case& c, uint64_t seed) {
  Generator g(seed);
  k::cpu::SelectiveScanInputs in;
  in.u = draw({c.batch, c.dim, c.len}, g, 1, 0);
  in.delta = c.options ? draw({c.batch, c.dim, c.len}, g, 0.5, -1.0)
                       : draw({c.batch, c.dim, c.len}, g, 0.3, 0.05, true);
  in.A = draw({c.dim, c.state}, g, -1, -0.3, true);
  in.B = draw({c.batch, c.groups, c.state, c.len}, g, 1, 0);
  in.C = draw({c.batch, c.groups, c.state, c.len}, g, 1, 0);
  if (c.options) {
    in.D = draw({c.dim}, g, 1, 0);
    in.z = draw({c.batch, c.dim, c.len}, g, 1, 0);
    in.delta_bias = draw({c.dim}, g, 0.2, 0);
    in.initial_state = draw({c.batch, c.dim, c.state}, g, 1, 0);
    in.delta_softplus = true;
  }
  return in;
}

k::cpu::SelectiveScanInputs moved(const k::cpu::SelectiveScanInputs& in, Device device,
                                  DType dtype) {
  k::cpu::SelectiveScanInputs r = in;
  for (Tensor* t : {&r.u, &r.delta, &r.A, &r.B, &r.C, &r.D, &r.z, &r.delta_bias, &r.initial_state})
    if (t->defined()) *t = t->to(dtype).to(device);
  return r;
}

Tensor on_cpu(const Tensor& t) {
  return t.defined() ? t.to(Device::CPU).to(DType::F64) : Tensor();
}

struct Outputs {
  std::vector<std::string> names;
  std::vector<Tensor> values;  // CPU float64
};

// Forward and backward of one backend; every result moved to the CPU as float64.
Outputs run(const k::cpu::SelectiveScanInputs& in, const Tensor& dout, const Tensor& dlast,
            bool cuda) {
  const k::cpu::SelectiveScanForward f =
      cuda ? k::cuda::selective_scan_fwd(in) : k::cpu::selective_scan_fwd(in);
  const k::cpu::SelectiveScanGrads g =
      cuda ? k::cuda::selective_scan_bwd(in, f.chunk_states, dout, dlast)
           : k::cpu::selective_scan_bwd(in, f.chunk_states, dout, dlast);
  Outputs o;
  o.names = {"out", "last_state", "du",          "ddelta",        "dA", "dB", "dC",
             "dD",  "dz",         "ddelta_bias", "dinitial_state"};
  for (const Tensor* t : {&f.out, &f.last_state, &g.du, &g.ddelta, &g.dA, &g.dB, &g.dC, &g.dD,
                          &g.dz, &g.ddelta_bias, &g.dinitial_state})
    o.values.push_back(on_cpu(*t));
  return o;
}

std::string describe(const Case& c) {
  return "B=" + std::to_string(c.batch) + " D=" + std::to_string(c.dim) +
         " G=" + std::to_string(c.groups) + " N=" + std::to_string(c.state) +
         " L=" + std::to_string(c.len) + (c.options ? " +opts" : "");
}

void check_case(const Case& c, uint64_t seed) {
  const k::cpu::SelectiveScanInputs in64 = make_inputs(c, seed);
  Generator g(seed + 1);
  const Tensor dout = draw({c.batch, c.dim, c.len}, g, 1, 0);
  const Tensor dlast = c.options ? draw({c.batch, c.dim, c.state}, g, 1, 0) : Tensor();
  const Outputs ref = run(in64, dout, dlast, false);
  for (DType dtype : {DType::F64, DType::F32}) {
    const double bound = dtype == DType::F64 ? 1e-10 : 1e-5;
    ssm::testing::PoisonDeviceMemory poison;
    const Outputs got =
        run(moved(in64, Device::CUDA, dtype), to_device(dout.to(dtype), Device::CUDA),
            dlast.defined() ? to_device(dlast.to(dtype), Device::CUDA) : Tensor(), true);
    std::string row;
    double worst = 0;
    for (size_t i = 0; i < ref.values.size(); ++i) {
      ASSERT_EQ(ref.values[i].defined(), got.values[i].defined()) << ref.names[i];
      if (!ref.values[i].defined()) continue;
      const double err = rel_error(got.values[i], ref.values[i]);
      worst = std::max(worst, err);
      EXPECT_LT(err, bound) << ref.names[i] << " " << dtype_name(dtype) << " " << describe(c);
    }
    std::printf("parity selective_scan %-34s %s worst rel err %.2e (bound %.0e)\n",
                describe(c).c_str(), dtype_name(dtype), worst, bound);
  }
}

TEST(CudaParitySelectiveScan, OddSizesForwardBackward) {
  SSM_SKIP_WITHOUT_CUDA();
  const Case cases[] = {
      {2, 6, 3, 5, 1},      {2, 6, 3, 5, 7},           {2, 6, 2, 5, 1000},  {2, 6, 2, 5, 1024},
      {2, 6, 3, 7, 1025},   {3, 5, 1, 16, 3001},       {1, 3, 1, 17, 2085}, {2, 3, 3, 64, 1500},
      {1, 2, 1, 128, 1111}, {2, 6, 2, 5, 2049, false},
  };
  uint64_t seed = 100;
  for (const Case& c : cases) check_case(c, seed++);
}

TEST(CudaParitySelectiveScan, LongSequences) {
  SSM_SKIP_WITHOUT_CUDA();
  check_case({1, 3, 1, 5, 65536}, 7);
  check_case({1, 2, 1, 16, 40000, false}, 8);
}

// B and C as transposes of (B, G, L, N) tensors, u as a slice: the kernel reads any strides.
TEST(CudaParitySelectiveScan, StridedInputs) {
  SSM_SKIP_WITHOUT_CUDA();
  ssm::testing::PoisonDeviceMemory poison;
  const Case c{2, 4, 2, 6, 1500};
  k::cpu::SelectiveScanInputs in64 = make_inputs(c, 31);
  Generator g(32);
  const Tensor wide = draw({c.batch, c.dim, c.len + 5}, g, 1, 0);
  in64.u = wide.narrow(2, 3, c.len).contiguous();
  const Tensor dout = draw({c.batch, c.dim, c.len}, g, 1, 0);
  const Outputs ref = run(in64, dout, Tensor(), false);

  k::cpu::SelectiveScanInputs dev = moved(in64, Device::CUDA, DType::F64);
  dev.u = wide.to(Device::CUDA).narrow(2, 3, c.len);
  dev.B = in64.B.transpose(2, 3).contiguous().to(Device::CUDA).transpose(2, 3);
  dev.C = in64.C.transpose(2, 3).contiguous().to(Device::CUDA).transpose(2, 3);
  ASSERT_FALSE(dev.B.is_contiguous());
  ASSERT_FALSE(dev.u.is_contiguous());
  const Outputs got = run(dev, dout.to(Device::CUDA), Tensor(), true);
  for (size_t i = 0; i < ref.values.size(); ++i) {
    if (ref.values[i].defined()) {
      EXPECT_LT(rel_error(got.values[i], ref.values[i]), 1e-10) << ref.names[i];
    }
  }
}

// The differentiable op on device tensors: forward on the GPU, backward through the autograd
// engine (the unused last_state gets the engine's CPU zeros, moved to the device by the op).
TEST(CudaParitySelectiveScan, AutogradOpOnDevice) {
  SSM_SKIP_WITHOUT_CUDA();
  ssm::testing::PoisonDeviceMemory poison;
  const Case c{2, 6, 3, 5, 1300};
  const k::cpu::SelectiveScanInputs in = make_inputs(c, 41);
  Generator g(42);
  const Tensor dout = draw({c.batch, c.dim, c.len}, g, 1, 0);
  auto leaves_on = [&](Device device) {
    std::vector<Tensor> t;
    for (const Tensor* x :
         {&in.u, &in.delta, &in.A, &in.B, &in.C, &in.D, &in.z, &in.delta_bias, &in.initial_state})
      t.push_back(x->to(device).detach().requires_grad_());
    return t;
  };
  std::vector<Tensor> grads[2];
  Tensor outs[2];
  for (int side = 0; side < 2; ++side) {
    const Device device = side == 0 ? Device::CPU : Device::CUDA;
    std::vector<Tensor> t = leaves_on(device);
    SelectiveScanResult r = selective_scan(
        t[0], t[1], t[2], t[3], t[4],
        {.D = t[5], .z = t[6], .delta_bias = t[7], .initial_state = t[8], .delta_softplus = true});
    EXPECT_EQ(r.out.device(), device);
    r.out.backward(dout.to(device));
    outs[side] = on_cpu(r.out.detach());
    for (const Tensor& leaf : t) grads[side].push_back(on_cpu(leaf.grad()));
  }
  EXPECT_LT(rel_error(outs[1], outs[0]), 1e-10);
  for (size_t i = 0; i < grads[0].size(); ++i)
    EXPECT_LT(rel_error(grads[1][i], grads[0][i]), 1e-10) << "input " << i;
}

// The decode step, 37 steps on both backends from the same state: every y_t and the final state.
TEST(CudaParitySelectiveScan, DecodeStep) {
  SSM_SKIP_WITHOUT_CUDA();
  const Case c{2, 6, 3, 17, 37};
  const k::cpu::SelectiveScanInputs in = make_inputs(c, 51);
  for (DType dtype : {DType::F64, DType::F32}) {
    ssm::testing::PoisonDeviceMemory poison;
    const double bound = dtype == DType::F64 ? 1e-10 : 1e-5;
    Tensor h_cpu = in.initial_state.clone();
    Tensor h_dev = in.initial_state.to(dtype).to(Device::CUDA);
    double worst = 0;
    for (int64_t l = 0; l < c.len; ++l) {
      auto step = [&](Device device, DType t) {
        auto at = [&](const Tensor& x) { return x.to(t).to(device); };
        k::cpu::SelectiveStepInputs s;
        s.x = at(in.u.select(2, l).contiguous());
        s.dt = at(in.delta.select(2, l).contiguous());
        s.A = at(in.A);
        s.B = at(in.B.select(3, l).contiguous());
        s.C = at(in.C.select(3, l).contiguous());
        s.D = at(in.D);
        s.z = at(in.z.select(2, l).contiguous());
        s.dt_bias = at(in.delta_bias);
        s.dt_softplus = true;
        return s;
      };
      const Tensor y_ref = k::cpu::selective_state_update(h_cpu, step(Device::CPU, DType::F64));
      const Tensor y = k::cuda::selective_state_update(h_dev, step(Device::CUDA, dtype));
      worst = std::max(worst, rel_error(on_cpu(y), y_ref));
    }
    worst = std::max(worst, rel_error(on_cpu(h_dev), h_cpu));
    EXPECT_LT(worst, bound) << dtype_name(dtype);
    std::printf("parity selective_state_update %-26s %s worst rel err %.2e (bound %.0e)\n",
                describe(c).c_str(), dtype_name(dtype), worst, bound);
  }
}

TEST(CudaParitySelectiveScan, RefusesMixedDevicesAndLargeState) {
  SSM_SKIP_WITHOUT_CUDA();
  k::cpu::SelectiveScanInputs in =
      moved(make_inputs({1, 2, 1, 3, 10}, 5), Device::CUDA, DType::F32);
  k::cpu::SelectiveScanInputs mixed = in;
  mixed.A = mixed.A.to(Device::CPU);
  EXPECT_SSM_ERROR(selective_scan(mixed.u, mixed.delta, mixed.A, mixed.B, mixed.C),
                   "selective_scan", "'A'", "cuda", "cpu");
  EXPECT_SSM_ERROR(k::cuda::selective_scan_fwd(
                       moved(make_inputs({1, 2, 1, 300, 4}, 6), Device::CUDA, DType::F32)),
                   "selective_scan_fwd", "N = 300");
  EXPECT_SSM_ERROR(k::cpu::selective_scan_fwd(in), "selective_scan_fwd", "CPU kernel", "cuda");
}

}  // namespace
