// Elementwise ops: argument checks, the call into the CPU or CUDA kernels (all operands on one
// device; ops/cuda_elementwise for the GPU), and the backward rules, shared by both devices.
// Binary backward: each operand's gradient is formed in the broadcast (output) shape and
// summed back to the operand's own shape with sum_to_shape (reduce_to_shape's semantics,
// through the parallel reduction kernel: the bias-gradient case is a column sum).
#include "ssm/ops/elementwise.h"

#include <algorithm>

#include "kernels/cpu/elementwise.h"
#include "ops/cuda_elementwise.h"
#include "ssm/autograd/node.h"
#include "ssm/ops/reduce.h"

namespace ssm {

namespace {

using cpu::BinaryOp;
using cpu::UnaryOp;

void check_float(const Tensor& t, const char* op, const char* arg) {
  SSM_CHECK(t.defined(), "{}: argument '{}' is an undefined tensor", op, arg);
  SSM_CHECK(is_floating(t.dtype()), "{}: argument '{}' expected float32 or float64, got {}", op,
            arg, dtype_name(t.dtype()));
}

bool on_cuda(const Tensor& t) {
  return t.device() == Device::CUDA;
}

// A gradient reaching a node may sit on the CPU (the engine's seed and the zeros it makes for
// unused outputs): bring it to the device of the values it is combined with.
Tensor grad_on(const Tensor& g, Device device) {
  return g.to(device).contiguous();
}

// The values of t, contiguous and without history (copies only when t is a strided view).
Tensor contiguous_values(const Tensor& t) {
  return t.detach().contiguous();
}

// ---------------------------------------------------------------- unary

Tensor unary_values(const char* name, UnaryOp op, const Tensor& xc, double scalar) {
  if (on_cuda(xc)) return cuda_unary_forward(name, op, xc, scalar);
  Tensor y = Tensor::empty(xc.shape(), xc.dtype());
  SSM_DISPATCH_FLOAT(xc.dtype(), name, [&] {
    cpu::unary_forward(op, xc.data<scalar_t>(), y.data<scalar_t>(), xc.numel(), scalar);
  });
  return y;
}

Tensor unary_op(const char* name, UnaryOp op, const Tensor& x, double scalar = 0.0) {
  check_float(x, name, "x");
  Tensor xc = contiguous_values(x);
  Tensor y = unary_values(name, op, xc, scalar);
  if (!needs_grad({x})) return y;
  Tensor ys = y.detach();
  return record(name, y, {x}, [name, op, xc, ys, scalar](const std::vector<Tensor>& g) {
    Tensor gy = grad_on(g[0], xc.device());
    if (on_cuda(xc)) return std::vector<Tensor>{cuda_unary_backward(name, op, xc, ys, gy, scalar)};
    Tensor gx = Tensor::empty(xc.shape(), xc.dtype());
    SSM_DISPATCH_FLOAT(xc.dtype(), name, [&] {
      cpu::unary_backward(op, xc.data<scalar_t>(), ys.data<scalar_t>(), gy.data<scalar_t>(),
                          gx.data<scalar_t>(), xc.numel(), scalar);
    });
    return std::vector<Tensor>{gx};
  });
}

// ---------------------------------------------------------------- binary

void check_binary(const char* name, const Tensor& a, const Tensor& b) {
  check_float(a, name, "a");
  check_float(b, name, "b");
  SSM_CHECK(a.device() == b.device(),
            "{}: argument 'b' expected a {} tensor (like argument 'a'), got {} (a has shape {}, "
            "b has shape {})",
            name, device_name(a.device()), device_name(b.device()), shape_str(a.shape()),
            shape_str(b.shape()));
  SSM_CHECK(a.dtype() == b.dtype(),
            "{}: arguments 'a' and 'b' must have the same dtype, got {} (a, shape {}) and {} (b, "
            "shape {})",
            name, dtype_name(a.dtype()), shape_str(a.shape()), dtype_name(b.dtype()),
            shape_str(b.shape()));
}

// a ∘ b for contiguous, history-free operands whose broadcast shape is `out_shape`.
Tensor binary_values(const char* name, BinaryOp op, const Tensor& ac, const Tensor& bc,
                     const Shape& out_shape) {
  const cpu::BroadcastPlan plan = cpu::plan_broadcast(ac.shape(), bc.shape(), out_shape);
  if (on_cuda(ac)) return cuda_binary_forward(name, op, ac, bc, out_shape, plan);
  Tensor out = Tensor::empty(out_shape, ac.dtype());
  SSM_DISPATCH_FLOAT(ac.dtype(), name, [&] {
    cpu::binary_forward(op, ac.data<scalar_t>(), bc.data<scalar_t>(), out.data<scalar_t>(), plan);
  });
  return out;
}

Tensor negated(const Tensor& t) {
  return unary_values("neg", UnaryOp::Neg, t, 0.0);
}

Tensor binary_op(const char* name, BinaryOp op, const Tensor& a, const Tensor& b) {
  check_binary(name, a, b);
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor ac = contiguous_values(a), bc = contiguous_values(b);
  Tensor out = binary_values(name, op, ac, bc, out_shape);
  if (!needs_grad({a, b})) return out;

  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  Tensor outs = out.detach();
  return record(name, out, {a, b}, [=](const std::vector<Tensor>& grads) {
    const Tensor g = grad_on(grads[0], ac.device());
    const Shape& sa = ac.shape();
    const Shape& sb = bc.shape();
    Tensor ga, gb;
    switch (op) {
      case BinaryOp::Add:
        if (need_a) ga = sum_to_shape(g, sa);
        if (need_b) gb = sum_to_shape(g, sb);
        break;
      case BinaryOp::Sub:
        if (need_a) ga = sum_to_shape(g, sa);
        if (need_b) gb = negated(sum_to_shape(g, sb));
        break;
      case BinaryOp::Mul:  // d(ab) = b·da + a·db
        if (need_a) ga = sum_to_shape(binary_values(name, op, g, bc, out_shape), sa);
        if (need_b) gb = sum_to_shape(binary_values(name, op, g, ac, out_shape), sb);
        break;
      case BinaryOp::Div:  // d(a/b) = da/b − (a/b)·db/b
        if (need_a) ga = sum_to_shape(binary_values(name, BinaryOp::Div, g, bc, out_shape), sa);
        if (need_b) {
          Tensor g_out = binary_values(name, BinaryOp::Mul, g, outs, out_shape);
          gb = negated(sum_to_shape(binary_values(name, BinaryOp::Div, g_out, bc, out_shape), sb));
        }
        break;
    }
    return std::vector<Tensor>{ga, gb};
  });
}

}  // namespace

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t nd = std::max(a.size(), b.size());
  Shape out(nd);
  for (size_t i = 0; i < nd; ++i) {  // i counts dims from the right
    const int64_t da = i < a.size() ? a[a.size() - 1 - i] : 1;
    const int64_t db = i < b.size() ? b[b.size() - 1 - i] : 1;
    SSM_CHECK(da == db || da == 1 || db == 1,
              "{}: shapes {} (argument 'a') and {} (argument 'b') cannot be broadcast: dimension "
              "{} has sizes {} and {}",
              op, shape_str(a), shape_str(b), -static_cast<int64_t>(i) - 1, da, db);
    out[nd - 1 - i] = da == 1 ? db : da;
  }
  return out;
}

Tensor add(const Tensor& a, const Tensor& b) {
  return binary_op("add", BinaryOp::Add, a, b);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary_op("sub", BinaryOp::Sub, a, b);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary_op("mul", BinaryOp::Mul, a, b);
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary_op("div", BinaryOp::Div, a, b);
}

Tensor add_scalar(const Tensor& a, double s) {
  return unary_op("add_scalar", UnaryOp::AddScalar, a, s);
}
Tensor mul_scalar(const Tensor& a, double s) {
  return unary_op("mul_scalar", UnaryOp::MulScalar, a, s);
}

Tensor neg(const Tensor& x) {
  return unary_op("neg", UnaryOp::Neg, x);
}
Tensor exp(const Tensor& x) {
  return unary_op("exp", UnaryOp::Exp, x);
}
Tensor log(const Tensor& x) {
  return unary_op("log", UnaryOp::Log, x);
}
Tensor sqrt(const Tensor& x) {
  return unary_op("sqrt", UnaryOp::Sqrt, x);
}
Tensor square(const Tensor& x) {
  return unary_op("square", UnaryOp::Square, x);
}
Tensor softplus(const Tensor& x) {
  return unary_op("softplus", UnaryOp::Softplus, x);
}
Tensor sigmoid(const Tensor& x) {
  return unary_op("sigmoid", UnaryOp::Sigmoid, x);
}
Tensor tanh(const Tensor& x) {
  return unary_op("tanh", UnaryOp::Tanh, x);
}
Tensor relu(const Tensor& x) {
  return unary_op("relu", UnaryOp::Relu, x);
}
Tensor silu(const Tensor& x) {
  return unary_op("silu", UnaryOp::Silu, x);
}
Tensor gelu(const Tensor& x, GeluApprox approx) {
  return unary_op("gelu", approx == GeluApprox::Erf ? UnaryOp::GeluErf : UnaryOp::GeluTanh, x);
}

}  // namespace ssm
