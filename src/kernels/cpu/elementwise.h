#pragma once
// CPU kernels for elementwise maps: pure compute over raw pointers, no autograd.
// Each op is a small functor; the loops are instantiated once per (op, scalar type) so the
// compiler sees a straight-line body it can vectorise. Work above kParallelThreshold
// elements is split across OpenMP threads.
#include <cstdint>
#include <vector>

#include "ssm/core/tensor.h"

namespace ssm::cpu {

// Below this many elements a parallel region costs more than it saves.
inline constexpr int64_t kParallelThreshold = 32768;

enum class UnaryOp {
  Neg,
  Exp,
  Log,
  Sqrt,
  Square,
  Softplus,
  Sigmoid,
  Tanh,
  Relu,
  Silu,
  GeluErf,
  GeluTanh,
  AddScalar,  // x + scalar
  MulScalar,  // x · scalar
};

// y[i] = f(x[i]) for n contiguous elements. `scalar` is used by AddScalar / MulScalar.
template <typename T>
void unary_forward(UnaryOp op, const T* x, T* y, int64_t n, double scalar = 0.0);

// gx[i] = gy[i] · f'(x[i]), given x and y = f(x) (each rule reads whichever is cheaper).
template <typename T>
void unary_backward(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n,
                    double scalar = 0.0);

enum class BinaryOp { Add, Sub, Mul, Div };

// How two contiguous operands are walked to fill a contiguous broadcast output.
// Output dims of size 1 are dropped and neighbouring dims that both operands traverse
// uniformly are merged, so the common cases collapse to one or two dims:
//   same shape          → sizes (n),    a_strides (1),    b_strides (1)
//   scalar operand b    → sizes (n),    a_strides (1),    b_strides (0)
//   bias b over (…, D)  → sizes (R, D), a_strides (D, 1), b_strides (0, 1)
// The innermost stride of each operand is always 0 (broadcast) or 1 (contiguous).
struct BroadcastPlan {
  std::vector<int64_t> sizes;
  std::vector<int64_t> a_strides;
  std::vector<int64_t> b_strides;
};

// Both shapes must already be known to broadcast to `out`.
BroadcastPlan plan_broadcast(const Shape& a, const Shape& b, const Shape& out);

// out = a ∘ b following `plan`; a, b contiguous, out contiguous and not aliasing a or b.
template <typename T>
void binary_forward(BinaryOp op, const T* a, const T* b, T* out, const BroadcastPlan& plan);

}  // namespace ssm::cpu
