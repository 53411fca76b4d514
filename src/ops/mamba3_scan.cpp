// mamba3_scan as an autograd op: the CPU kernel forward, its saved chunk states, and the
// kernel backward as the op's backward rule.
#include "ssm/ops/mamba3_scan.h"

#include "ssm/autograd/node.h"
#include "ssm/kernels/mamba3_scan.h"

namespace ssm {

namespace {

Tensor detach_or_empty(const Tensor& t) {
  return t.defined() ? t.detach() : Tensor();
}

}  // namespace

Mamba3ScanResult mamba3_scan(const Tensor& x, const Tensor& dt, const Tensor& A,
                             const Tensor& lambda, const Tensor& B, const Tensor& C,
                             const Mamba3ScanOptions& options) {
  namespace k = kernels::cpu;
  k::Mamba3ScanInputs in;
  in.x = x;
  in.dt = dt;
  in.A = A;
  in.lambda = lambda;
  in.B = B;
  in.C = C;
  in.D = options.D;
  in.initial_state = options.initial_state;
  in.initial_B = options.initial_B;
  in.initial_x = options.initial_x;
  in.chunk_size = options.chunk_size;
  const char* op = "mamba3_scan";
  k::check_mamba3_scan_inputs(in, op);
  const std::vector<Tensor> inputs = {x,
                                      dt,
                                      A,
                                      lambda,
                                      B,
                                      C,
                                      options.D,
                                      options.initial_state,
                                      options.initial_B,
                                      options.initial_x};
  for (const Tensor& t : inputs)
    SSM_CHECK(!t.defined() || t.device() == Device::CPU,
              "mamba3_scan: only the CPU kernel exists so far, got a {} tensor",
              device_name(t.device()));
  k::check_mamba3_scan_values(in, op);

  const bool grad = needs_grad(inputs);
  k::Mamba3ScanForward fwd = k::mamba3_scan_fwd(in, /*save_chunk_states=*/grad);
  if (!grad) return {fwd.y, fwd.final_state};

  // The backward holds detached inputs (no reference cycle through the graph).
  k::Mamba3ScanInputs saved = in;
  for (Tensor* t : {&saved.x, &saved.dt, &saved.A, &saved.lambda, &saved.B, &saved.C, &saved.D,
                    &saved.initial_state, &saved.initial_B, &saved.initial_x})
    *t = detach_or_empty(*t);
  Tensor chunk_states = fwd.chunk_states;
  auto outs = record(op, {fwd.y, fwd.final_state}, inputs,
                     [saved, chunk_states](const std::vector<Tensor>& g) {
                       k::Mamba3ScanGrads d = k::mamba3_scan_bwd(saved, chunk_states, g[0], g[1]);
                       return std::vector<Tensor>{d.dx,         d.ddt,       d.dA, d.dlambda,
                                                  d.dB,         d.dC,        d.dD, d.dinitial_state,
                                                  d.dinitial_B, d.dinitial_x};
                     });
  return {outs[0], outs[1]};
}

Tensor mamba3_state_update(Tensor& state, Tensor& prev_B, Tensor& prev_x, const Tensor& x_t,
                           const Tensor& dt_t, const Tensor& A, const Tensor& lambda_t,
                           const Tensor& B_t, const Tensor& C_t, const Tensor& D) {
  kernels::cpu::Mamba3StepInputs in;
  in.x = x_t;
  in.dt = dt_t;
  in.A = A;
  in.lambda = lambda_t;
  in.B = B_t;
  in.C = C_t;
  in.D = D;
  return kernels::cpu::mamba3_state_update(state, prev_B, prev_x, in);
}

}  // namespace ssm
