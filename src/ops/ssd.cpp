// ssd as an autograd op: forward by the sequential recurrence (short inputs) or the chunked
// algorithm, backward by the kernel's exact chunked backward; CUDA tensors go to ops/cuda_ssd.
#include "ssm/ops/ssd.h"

#include "ops/cuda_ssd.h"
#include "ops/cuda_ssd_step.h"
#include "ssm/autograd/node.h"
#include "ssm/kernels/ssd.h"

namespace ssm {

namespace {

// Up to this length one sequential pass is cheaper than setting up the chunked GEMMs.
constexpr int64_t kSequentialMaxLength = 8;

Tensor detach_or_empty(const Tensor& t) {
  return t.defined() ? t.detach() : Tensor();
}

}  // namespace

SsdResult ssd(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
              const SsdOptions& options) {
  namespace k = kernels::cpu;
  k::SsdInputs in;
  in.x = x;
  in.dt = dt;
  in.A = A;
  in.B = B;
  in.C = C;
  in.D = options.D;
  in.initial_state = options.initial_state;
  in.chunk_size = options.chunk_size;
  k::check_ssd_inputs(in, "ssd");
  if (x.device() == Device::CUDA) return cuda_ssd(x, dt, A, B, C, options);
  for (const Tensor* t : {&dt, &A, &B, &C, &options.D, &options.initial_state})
    SSM_CHECK(!t->defined() || t->device() == Device::CPU,
              "ssd: x is on the CPU but another argument is on {}", device_name(t->device()));

  k::SsdOutputs fwd =
      x.size(1) <= kSequentialMaxLength ? k::ssd_sequential(in) : k::ssd_chunked_fwd(in);
  const std::vector<Tensor> inputs = {x, dt, A, B, C, options.D, options.initial_state};
  if (!needs_grad(inputs)) return {fwd.y, fwd.final_state};

  k::SsdInputs saved = in;
  for (Tensor* t :
       {&saved.x, &saved.dt, &saved.A, &saved.B, &saved.C, &saved.D, &saved.initial_state})
    *t = detach_or_empty(*t);
  auto outs =
      record("ssd", {fwd.y, fwd.final_state}, inputs, [saved](const std::vector<Tensor>& g) {
        k::SsdGrads d = k::ssd_bwd(saved, g[0], g[1]);
        return std::vector<Tensor>{d.dx, d.ddt, d.dA, d.dB, d.dC, d.dD, d.dinitial_state};
      });
  return {outs[0], outs[1]};
}

Tensor ssd_state_update(Tensor& state, const Tensor& x_t, const Tensor& dt_t, const Tensor& A,
                        const Tensor& B_t, const Tensor& C_t, const Tensor& D) {
  kernels::cpu::SsdStepInputs in;
  in.x = x_t;
  in.dt = dt_t;
  in.A = A;
  in.B = B_t;
  in.C = C_t;
  in.D = D;
  if (x_t.device() == Device::CUDA) return cuda_ssd_state_update(state, in);
  return kernels::cpu::ssd_state_update(state, in);
}

}  // namespace ssm
