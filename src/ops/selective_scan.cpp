// selective_scan as an autograd op: the kernel forward of the inputs' device (CPU or CUDA), its
// saved chunk states, and the same backend's kernel backward as the op's backward rule.
#include "ssm/ops/selective_scan.h"

#include "ssm/autograd/node.h"
#include "ssm/kernels/selective_scan.h"

namespace ssm {

namespace {

Tensor detach_or_empty(const Tensor& t) {
  return t.defined() ? t.detach() : Tensor();
}

// The autograd engine fills a missing output gradient with zeros on the CPU; a CUDA backward
// needs it on the device.
Tensor on_device(const Tensor& t, Device device) {
  return t.defined() && t.device() != device ? t.to(device) : t;
}

}  // namespace

SelectiveScanResult selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A,
                                   const Tensor& B, const Tensor& C,
                                   const SelectiveScanOptions& options) {
  namespace k = kernels::cpu;
  k::SelectiveScanInputs in;
  in.u = u;
  in.delta = delta;
  in.A = A;
  in.B = B;
  in.C = C;
  in.D = options.D;
  in.z = options.z;
  in.delta_bias = options.delta_bias;
  in.initial_state = options.initial_state;
  in.delta_softplus = options.delta_softplus;
  in.chunk_size = options.chunk_size;
  k::check_selective_scan_inputs(in, "selective_scan");  // also: every tensor on u's device
  const Device device = u.device();
  const bool on_cuda = device == Device::CUDA;

  k::SelectiveScanForward fwd =
      on_cuda ? kernels::cuda::selective_scan_fwd(in) : k::selective_scan_fwd(in);
  const std::vector<Tensor> inputs = {
      u, delta, A, B, C, options.D, options.z, options.delta_bias, options.initial_state};
  if (!needs_grad(inputs)) return {fwd.out, fwd.last_state};

  // The backward holds detached inputs (no reference cycle through the graph).
  k::SelectiveScanInputs saved = in;
  for (Tensor* t : {&saved.u, &saved.delta, &saved.A, &saved.B, &saved.C, &saved.D, &saved.z,
                    &saved.delta_bias, &saved.initial_state})
    *t = detach_or_empty(*t);
  Tensor chunk_states = fwd.chunk_states;
  auto outs =
      record("selective_scan", {fwd.out, fwd.last_state}, inputs,
             [saved, chunk_states, device, on_cuda](const std::vector<Tensor>& g) {
               const Tensor dout = on_device(g[0], device), dlast = on_device(g[1], device);
               k::SelectiveScanGrads d =
                   on_cuda ? kernels::cuda::selective_scan_bwd(saved, chunk_states, dout, dlast)
                           : k::selective_scan_bwd(saved, chunk_states, dout, dlast);
               return std::vector<Tensor>{
                   d.du, d.ddelta, d.dA, d.dB, d.dC, d.dD, d.dz, d.ddelta_bias, d.dinitial_state};
             });
  return {outs[0], outs[1]};
}

Tensor selective_state_update(Tensor& state, const Tensor& x_t, const Tensor& dt_t, const Tensor& A,
                              const Tensor& B_t, const Tensor& C_t, const Tensor& D,
                              const Tensor& z_t, const Tensor& dt_bias, bool dt_softplus) {
  kernels::cpu::SelectiveStepInputs in;
  in.x = x_t;
  in.dt = dt_t;
  in.A = A;
  in.B = B_t;
  in.C = C_t;
  in.D = D;
  in.z = z_t;
  in.dt_bias = dt_bias;
  in.dt_softplus = dt_softplus;
  return x_t.device() == Device::CUDA ? kernels::cuda::selective_state_update(state, in)
                                       : kernels::cpu::selective_state_update(state, in);
}

}  // namespace ssm
