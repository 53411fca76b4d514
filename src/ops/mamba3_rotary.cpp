// mamba3_rotary as an autograd op (kernel forward, kernel backward as its rule), and the
// single step as the same kernel over a sequence of length one.
#include "ssm/ops/mamba3_rotary.h"

#include "ssm/autograd/node.h"
#include "ssm/kernels/mamba3_rotary.h"

namespace ssm {

Mamba3RotaryResult mamba3_rotary(const Tensor& x, const Tensor& dt, const Tensor& theta,
                                 const Tensor& initial_angle) {
  namespace k = kernels::cpu;
  const char* op = "mamba3_rotary";
  k::Mamba3RotaryInputs in{.x = x, .dt = dt, .theta = theta, .initial_angle = initial_angle};
  k::check_mamba3_rotary_inputs(in, op);
  const std::vector<Tensor> inputs = {x, dt, theta, initial_angle};
  for (const Tensor& t : inputs)
    SSM_CHECK(!t.defined() || t.device() == Device::CPU,
              "mamba3_rotary: only the CPU kernel exists so far, got a {} tensor",
              device_name(t.device()));
  k::Mamba3RotaryForward fwd = k::mamba3_rotary_fwd(in);
  if (!needs_grad(inputs)) return {fwd.out, fwd.final_angle};

  k::Mamba3RotaryInputs saved{
      .x = x.detach(),
      .dt = dt.detach(),
      .theta = theta.detach(),
      .initial_angle = initial_angle.defined() ? initial_angle.detach() : Tensor()};
  auto outs = record(op, {fwd.out, fwd.final_angle}, inputs, [saved](const std::vector<Tensor>& g) {
    k::Mamba3RotaryGrads d = k::mamba3_rotary_bwd(saved, g[0], g[1]);
    return std::vector<Tensor>{d.dx, d.ddt, d.dtheta, d.dinitial_angle};
  });
  return {outs[0], outs[1]};
}

Mamba3RotaryResult mamba3_rotary_step(const Tensor& x_t, const Tensor& dt_t, const Tensor& theta_t,
                                      const Tensor& angle) {
  const char* op = "mamba3_rotary_step";
  const std::pair<const char*, const Tensor*> required[] = {
      {"x_t", &x_t}, {"dt_t", &dt_t}, {"theta_t", &theta_t}, {"angle", &angle}};
  for (const auto& [name, t] : required)
    SSM_CHECK(t->defined(), "{}: argument '{}' is required but undefined", op, name);
  SSM_CHECK(x_t.dim() == 3, "{}: argument 'x_t' expected shape (B, H, N), got {}", op,
            shape_str(x_t.shape()));
  SSM_CHECK(theta_t.dim() == 3, "{}: argument 'theta_t' expected shape (B, H, S), got {}", op,
            shape_str(theta_t.shape()));
  const int64_t batch = x_t.size(0), heads = x_t.size(1), angles = theta_t.size(2);
  const auto expect = [&](const Tensor& t, const Shape& shape, const char* name,
                          const char* layout) {
    SSM_CHECK(t.shape() == shape, "{}: argument '{}' expected shape {} = {}, got {}", op, name,
              layout, shape_str(shape), shape_str(t.shape()));
  };
  expect(dt_t, {batch, heads}, "dt_t", "(B, H)");
  expect(theta_t, {batch, heads, angles}, "theta_t", "(B, H, S)");
  expect(angle, {batch, heads, angles}, "angle", "(B, H, S)");
  kernels::cpu::Mamba3RotaryInputs in{.x = x_t.unsqueeze(1),
                                      .dt = dt_t.unsqueeze(1),
                                      .theta = theta_t.unsqueeze(1),
                                      .initial_angle = angle};
  auto fwd = kernels::cpu::mamba3_rotary_fwd(in);
  return {fwd.out.squeeze(1), fwd.final_angle};
}

}  // namespace ssm
