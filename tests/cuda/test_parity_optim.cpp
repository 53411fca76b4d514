// AdamW and gradient-norm clipping, CUDA vs CPU: the same start, the same gradients, odd sizes,
// two groups (one with weight decay), float64 and float32, NaN-poisoned device memory.
//
// Bounds: float64 1e-12 and float32 1e-6 (relative). The CUDA kernel performs the CPU loop's
// IEEE operations in the same order with FMA contraction ruled out, so the two normally agree to
// the last bit; the float32 bound leaves room for a CPU build that contracts a·b + c into an FMA
// (-march=native), a one-rounding difference per operation over a few steps of a
// well-conditioned update.
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "ssm/optim/adamw.h"
#include "ssm/optim/clip_grad.h"
#include "support/cuda_testing.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::optim;
using ssm::testing::rel_error;

namespace {

Tensor host_f64(const Tensor& t) {
  return t.to(Device::CPU).to(DType::F64);
}

double bound_for(DType dtype) {
  return dtype == DType::F64 ? 1e-12 : 1e-6;
}

// Five parameters: 1, 7, 1000 (as 40 × 25) and 65537 elements, and a second 7 that the GPU run
// keeps on the host (one optimizer with parameters on two devices).
const std::vector<Shape> kShapes = {{1}, {7}, {40, 25}, {65537}, {7}};
const std::vector<std::string> kNames = {"a", "b", "c", "d", "e"};
constexpr int kHostResident = 4;

std::vector<Tensor> make_params(DType dtype, Device device, uint64_t seed) {
  std::vector<Tensor> ps;
  for (size_t i = 0; i < kShapes.size(); ++i) {
    const Device d = static_cast<int>(i) == kHostResident ? Device::CPU : device;
    ps.push_back(ssm::testing::random(kShapes[i], DType::F64, seed + i)
                     .to(dtype)
                     .to(d)
                     .detach()
                     .requires_grad_());
  }
  return ps;
}

// "decay": a, c with weight decay; "ssm": b, d, e at their own lr without it.
AdamW make_adamw(const std::vector<Tensor>& ps) {
  std::vector<ParamGroup> groups{{{ps[0], ps[2]}, 0.01, 0.1, "decay", {"a", "c"}},
                                 {{ps[1], ps[3], ps[4]}, 0.003, 0.0, "ssm", {"b", "d", "e"}}};
  return AdamW(groups, AdamWOptions{0.85, 0.97, 1e-7});
}

// Fresh gradients for step `s` on each parameter's device; "a" gets none at step 2 (skipped, its
// step count stays behind the others').
void set_grads(const std::vector<Tensor>& ps, int s, DType dtype) {
  for (size_t i = 0; i < ps.size(); ++i) {
    Tensor p = ps[i];
    if (i == 0 && s == 2) {
      p.zero_grad();
      continue;
    }
    const Tensor g = ssm::testing::random(kShapes[i], DType::F64, 1000 * (s + 1) + i).to(dtype);
    p.set_grad(g.to(p.device()));
  }
}

const double kLrScales[] = {1.0, 0.6, 1.4, 0.3, 0.9, 1.1};

void run_steps(AdamW& opt, const std::vector<Tensor>& ps, int first, int last, DType dtype) {
  for (int s = first; s < last; ++s) {
    set_grads(ps, s, dtype);
    opt.set_lr_scale(kLrScales[s % 6]);
    opt.step();
  }
}

TEST(CudaParityOptim, AdamWTwoGroupsOddSizesMatchesCpu) {
  SSM_SKIP_WITHOUT_CUDA();
  for (DType dtype : {DType::F64, DType::F32}) {
    ssm::testing::PoisonDeviceMemory poison;
    const std::vector<Tensor> cpu = make_params(dtype, Device::CPU, 10);
    const std::vector<Tensor> gpu = make_params(dtype, Device::CUDA, 10);
    AdamW cpu_opt = make_adamw(cpu), gpu_opt = make_adamw(gpu);
    run_steps(cpu_opt, cpu, 0, 5, dtype);
    run_steps(gpu_opt, gpu, 0, 5, dtype);
    double worst = 0;
    for (size_t i = 0; i < cpu.size(); ++i) {
      EXPECT_EQ(gpu[i].device(), static_cast<int>(i) == kHostResident ? Device::CPU : Device::CUDA);
      const double e = rel_error(host_f64(gpu[i]), host_f64(cpu[i]));
      worst = std::max(worst, e);
      EXPECT_LT(e, bound_for(dtype)) << "param " << kNames[i] << " " << dtype_name(dtype);
    }
    const auto cpu_state = cpu_opt.state_dict(), gpu_state = gpu_opt.state_dict();
    ASSERT_EQ(cpu_state.size(), gpu_state.size());
    for (const auto& [key, ref] : cpu_state) {
      const Tensor& got = gpu_state.at(key);
      if (key.rfind("step.", 0) == 0) {
        EXPECT_EQ(got.to(Device::CPU).item(), ref.item()) << key;
        continue;
      }
      const bool host_resident = key.substr(key.find('.') + 1) == kNames[kHostResident];
      EXPECT_EQ(got.device(), host_resident ? Device::CPU : Device::CUDA) << key;
      const double e = rel_error(host_f64(got), host_f64(ref));
      worst = std::max(worst, e);
      EXPECT_LT(e, bound_for(dtype)) << key << " " << dtype_name(dtype);
    }
    EXPECT_EQ(gpu_state.at("step.a").item(), 4.0);  // one step without a gradient
    std::printf("parity adamw 5 steps, 2 groups, sizes 1/7/1000/65537 %s worst rel err %.2e\n",
                dtype_name(dtype), worst);
  }
}

TEST(CudaParityOptim, AdamWStateDictRoundTripThroughHostContinuesIdentically) {
  SSM_SKIP_WITHOUT_CUDA();
  for (DType dtype : {DType::F64, DType::F32}) {
    ssm::testing::PoisonDeviceMemory poison;
    const std::vector<Tensor> ps = make_params(dtype, Device::CUDA, 40);
    AdamW opt = make_adamw(ps);
    run_steps(opt, ps, 0, 3, dtype);
    // What a checkpoint holds: every tensor copied to the host.
    std::map<std::string, Tensor> saved;
    for (const auto& [key, t] : opt.state_dict()) saved[key] = t.to(Device::CPU);
    std::vector<Tensor> restored_ps;
    for (const Tensor& p : ps)
      restored_ps.push_back(p.detach().clone().requires_grad_());  // same device as p
    AdamW restored = make_adamw(restored_ps);
    restored.load_state_dict(saved);
    for (const auto& [key, t] : restored.state_dict()) {
      if (key.rfind("step.", 0) == 0) continue;
      const bool host_resident = key.substr(key.find('.') + 1) == kNames[kHostResident];
      EXPECT_EQ(t.device(), host_resident ? Device::CPU : Device::CUDA) << key;
      EXPECT_EQ(t.to(Device::CPU).to_vector(), saved.at(key).to_vector()) << key;
    }
    run_steps(opt, ps, 3, 6, dtype);
    run_steps(restored, restored_ps, 3, 6, dtype);
    for (size_t i = 0; i < ps.size(); ++i)
      EXPECT_EQ(ps[i].to(Device::CPU).to_vector(), restored_ps[i].to(Device::CPU).to_vector())
          << "param " << kNames[i] << " " << dtype_name(dtype);
    std::printf("adamw state_dict GPU -> host -> GPU, 3 + 3 steps %s: continued bit for bit\n",
                dtype_name(dtype));
  }
}

TEST(CudaParityOptim, AdamWLoadStateDictChecksShapes) {
  SSM_SKIP_WITHOUT_CUDA();
  const std::vector<Tensor> ps = make_params(DType::F32, Device::CUDA, 50);
  AdamW opt = make_adamw(ps);
  std::map<std::string, Tensor> bad{{"exp_avg.c", Tensor::zeros({25, 40}, DType::F32)},
                                    {"exp_avg_sq.c", Tensor::zeros({40, 25}, DType::F32)},
                                    {"step.c", Tensor::full({}, 1.0, DType::I64)}};
  EXPECT_SSM_ERROR(opt.load_state_dict(bad), "exp_avg.c", "expected shape (40, 25)", "(25, 40)");
}

// Gradients on `device`, float64 and float32 mixed, one of them a transposed view, one
// parameter without a gradient.
struct ClipCase {
  std::vector<Tensor> params;
  std::vector<Tensor> grads;  // as set, for checking what clipping did
};

ClipCase make_clip_case(Device device, uint64_t seed) {
  const std::vector<Shape> shapes = {{1}, {7}, {25, 40}, {65537}, {3}};
  const DType dtypes[] = {DType::F64, DType::F32, DType::F64, DType::F32, DType::F64};
  ClipCase c;
  for (size_t i = 0; i < shapes.size(); ++i) {
    Tensor p = ssm::testing::random(shapes[i], DType::F64, seed + i)
                   .to(dtypes[i])
                   .to(device)
                   .detach()
                   .requires_grad_();
    c.params.push_back(p);
    if (i == 4) {  // no gradient
      c.grads.push_back(Tensor());
      continue;
    }
    Tensor g = ssm::testing::random(shapes[i], DType::F64, seed + 100 + i).to(dtypes[i]);
    g = g.to(device);
    if (i == 2) g = g.transpose(0, 1).contiguous().transpose(0, 1);  // strided (25, 40)
    p.set_grad(g);
    c.grads.push_back(g);
  }
  return c;
}

TEST(CudaParityOptim, ClipGradNormMatchesCpu) {
  SSM_SKIP_WITHOUT_CUDA();
  ssm::testing::PoisonDeviceMemory poison;
  const ClipCase cpu = make_clip_case(Device::CPU, 60);
  const ClipCase gpu = make_clip_case(Device::CUDA, 60);
  const double ref_norm = grad_norm(cpu.params);
  EXPECT_LT(std::abs(grad_norm(gpu.params) - ref_norm), 1e-12 * ref_norm);
  const double max_norm = 0.3 * ref_norm;
  const double cpu_ret = clip_grad_norm(cpu.params, max_norm);
  const double gpu_ret = clip_grad_norm(gpu.params, max_norm);
  EXPECT_DOUBLE_EQ(cpu_ret, ref_norm);
  const double norm_err = std::abs(gpu_ret - cpu_ret) / cpu_ret;
  EXPECT_LT(norm_err, 1e-12);
  double worst = 0;
  for (size_t i = 0; i < cpu.params.size(); ++i) {
    const Tensor gg = gpu.params[i].grad(), cg = cpu.params[i].grad();
    if (!cg.defined()) {
      EXPECT_FALSE(gg.defined());
      continue;
    }
    EXPECT_EQ(gg.device(), Device::CUDA);
    EXPECT_EQ(gg.dtype(), cg.dtype());
    const double e = rel_error(host_f64(gg), host_f64(cg));
    worst = std::max(worst, e);
    EXPECT_LT(e, bound_for(cg.dtype())) << "grad " << i;
    // The tensor that was set is left as it was (the clipped gradient is a fresh one).
    EXPECT_NE(gg.impl_ptr(), gpu.grads[i].impl_ptr());
  }
  EXPECT_LT(rel_error(Tensor::scalar(grad_norm(gpu.params), DType::F64),
                      Tensor::scalar(max_norm, DType::F64)),
            1e-5);
  std::printf(
      "parity clip_grad_norm sizes 1/7/1000/65537 f64+f32 norm rel err %.2e, scaled grads "
      "worst rel err %.2e\n",
      norm_err, worst);
}

TEST(CudaParityOptim, ClipGradNormBelowMaxAndNonFiniteLeaveGradients) {
  SSM_SKIP_WITHOUT_CUDA();
  ssm::testing::PoisonDeviceMemory poison;
  const ClipCase gpu = make_clip_case(Device::CUDA, 70);
  const ClipCase cpu = make_clip_case(Device::CPU, 70);
  const double norm = grad_norm(cpu.params);
  const double ret = clip_grad_norm(gpu.params, 2 * norm);
  EXPECT_LT(std::abs(ret - norm), 1e-12 * norm);
  for (size_t i = 0; i < gpu.params.size(); ++i)
    EXPECT_EQ(gpu.params[i].grad().impl_ptr(), gpu.grads[i].impl_ptr()) << "grad " << i;
  // A NaN in one device gradient: the norm is NaN and nothing is scaled.
  Tensor bad = Tensor::from_vector({1.0, NAN, 2.0, 0.5, 0.25, 3.0, -1.0}, {7}, DType::F32);
  Tensor(gpu.params[1]).set_grad(bad.to(Device::CUDA));
  const Tensor before = gpu.params[3].grad();
  EXPECT_TRUE(std::isnan(clip_grad_norm(gpu.params, 1e-3)));
  EXPECT_EQ(gpu.params[3].grad().impl_ptr(), before.impl_ptr());
}

TEST(CudaParityOptim, ClipGradNormSharedDeviceGradientScaledOnce) {
  SSM_SKIP_WITHOUT_CUDA();
  Tensor a = ssm::testing::random({9}, DType::F64, 80).to(Device::CUDA).detach().requires_grad_();
  Tensor b = ssm::testing::random({9}, DType::F64, 81).to(Device::CUDA).detach().requires_grad_();
  const Tensor g = ssm::testing::random({9}, DType::F64, 82);
  a.set_grad(g.to(Device::CUDA));
  b.set_grad(a.grad());  // one storage behind both gradients
  double plain = 0;
  for (double x : g.to_vector()) plain += x * x;
  plain = std::sqrt(2 * plain);
  const double norm = clip_grad_norm({a, b}, 0.5);
  EXPECT_LT(std::abs(norm - plain), 1e-12 * plain);
  EXPECT_LT(std::abs(grad_norm({a, b}) - 0.5), 1e-6);
}

}  // namespace
