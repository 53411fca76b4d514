#pragma once
// Differentiable elementwise ops (CPU; float32 / float64). Binary ops broadcast NumPy-style
// (shapes align from the right; a dim of size 1 stretches); both operands must have the same
// float dtype (the error names the op and both shapes / dtypes). Inputs may be any strided
// view; outputs are fresh contiguous tensors.
#include "ssm/core/tensor.h"

namespace ssm {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& a, double s);
Tensor mul_scalar(const Tensor& a, double s);

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor softplus(const Tensor& x);  // log(1 + e^x) computed stably; exactly x for x > 20
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor relu(const Tensor& x);  // gradient 0 at x = 0
Tensor silu(const Tensor& x);  // x·σ(x)
// Erf: x·Φ(x) exactly; Tanh: ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (GPT-2 / "gelu_new").
enum class GeluApprox { Erf, Tanh };
Tensor gelu(const Tensor& x, GeluApprox approx = GeluApprox::Erf);

// clang-format off
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, double s) { return add_scalar(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add_scalar(a, -s); }
inline Tensor operator*(const Tensor& a, double s) { return mul_scalar(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul_scalar(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return mul_scalar(a, 1.0 / s); }
inline Tensor operator+(double s, const Tensor& a) { return add_scalar(a, s); }
inline Tensor operator-(double s, const Tensor& a) { return add_scalar(neg(a), s); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
// clang-format on

// The broadcast shape of a and b; throws naming `op` when they are incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace ssm
