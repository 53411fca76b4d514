#pragma once
// Internal: the CUDA half of the elementwise ops. ops/elementwise.cpp does the argument checks,
// the broadcasting plan and the autograd rules for both devices; these compute values on the
// GPU from contiguous CUDA tensors and return new contiguous CUDA tensors. Without the backend
// each throws ssm::Error naming the op.
#include "kernels/cpu/elementwise.h"
#include "ssm/core/tensor.h"

namespace ssm {

// y = f(x).
Tensor cuda_unary_forward(const char* op, cpu::UnaryOp kind, const Tensor& x, double scalar);
// gx = gy · f'(x), given x and y = f(x).
Tensor cuda_unary_backward(const char* op, cpu::UnaryOp kind, const Tensor& x, const Tensor& y,
                           const Tensor& gy, double scalar);
// a ∘ b of shape out_shape, walked as `plan` says (cpu::plan_broadcast of the three shapes).
Tensor cuda_binary_forward(const char* op, cpu::BinaryOp kind, const Tensor& a, const Tensor& b,
                           const Shape& out_shape, const cpu::BroadcastPlan& plan);

}  // namespace ssm
