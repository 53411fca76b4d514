// Elementwise values on CUDA tensors: maps the CPU op enums onto the CUDA kernels' (a switch
// per enum, so an op added to one side without the other fails to compile under -Werror's
// -Wswitch) and the broadcasting plan onto the kernels' fixed-size index.
#include "ops/cuda_elementwise.h"

#ifdef SSM_WITH_CUDA
#include "core/cuda/check.h"
#include "kernels/cuda/elementwise_binary.h"
#include "kernels/cuda/elementwise_unary.h"
#endif

namespace ssm {

#ifdef SSM_WITH_CUDA

namespace {

namespace kc = kernels::cuda;

kc::UnaryOp to_cuda(cpu::UnaryOp op) {
  using U = cpu::UnaryOp;
  switch (op) {
    case U::Neg:
      return kc::UnaryOp::Neg;
    case U::Exp:
      return kc::UnaryOp::Exp;
    case U::Log:
      return kc::UnaryOp::Log;
    case U::Sqrt:
      return kc::UnaryOp::Sqrt;
    case U::Square:
      return kc::UnaryOp::Square;
    case U::Softplus:
      return kc::UnaryOp::Softplus;
    case U::Sigmoid:
      return kc::UnaryOp::Sigmoid;
    case U::Tanh:
      return kc::UnaryOp::Tanh;
    case U::Relu:
      return kc::UnaryOp::Relu;
    case U::Silu:
      return kc::UnaryOp::Silu;
    case U::GeluErf:
      return kc::UnaryOp::GeluErf;
    case U::GeluTanh:
      return kc::UnaryOp::GeluTanh;
    case U::AddScalar:
      return kc::UnaryOp::AddScalar;
    case U::MulScalar:
      return kc::UnaryOp::MulScalar;
  }
  SSM_FAIL("elementwise: unary op {} has no CUDA kernel", static_cast<int>(op));
}

kc::BinaryOp to_cuda(cpu::BinaryOp op) {
  using B = cpu::BinaryOp;
  switch (op) {
    case B::Add:
      return kc::BinaryOp::Add;
    case B::Sub:
      return kc::BinaryOp::Sub;
    case B::Mul:
      return kc::BinaryOp::Mul;
    case B::Div:
      return kc::BinaryOp::Div;
  }
  SSM_FAIL("elementwise: binary op {} has no CUDA kernel", static_cast<int>(op));
}

template <typename T>
T* dev(const Tensor& t) {
  return t.data_on<T>(Device::CUDA);
}

}  // namespace

Tensor cuda_unary_forward(const char* op, cpu::UnaryOp kind, const Tensor& x, double scalar) {
  Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
  SSM_DISPATCH_FLOAT(x.dtype(), op, [&] {
    SSM_CUDA_CHECK(kc::unary_fwd<scalar_t>(to_cuda(kind), dev<scalar_t>(x), dev<scalar_t>(y),
                                           x.numel(), scalar, cuda::detail::stream()),
                   op);
  });
  return y;
}

Tensor cuda_unary_backward(const char* op, cpu::UnaryOp kind, const Tensor& x, const Tensor& y,
                           const Tensor& gy, double scalar) {
  Tensor gx = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
  SSM_DISPATCH_FLOAT(x.dtype(), op, [&] {
    SSM_CUDA_CHECK(kc::unary_bwd<scalar_t>(to_cuda(kind), dev<scalar_t>(x), dev<scalar_t>(y),
                                           dev<scalar_t>(gy), dev<scalar_t>(gx), x.numel(), scalar,
                                           cuda::detail::stream()),
                   op);
  });
  return gx;
}

Tensor cuda_binary_forward(const char* op, cpu::BinaryOp kind, const Tensor& a, const Tensor& b,
                           const Shape& out_shape, const cpu::BroadcastPlan& plan) {
  const int ndim = static_cast<int>(plan.sizes.size());
  SSM_CHECK(ndim >= 1 && ndim <= kc::kMaxBroadcastDims,
            "{}: shapes {} (argument 'a') and {} (argument 'b') broadcast over {} alternating "
            "dims, the CUDA kernel takes at most {}",
            op, shape_str(a.shape()), shape_str(b.shape()), ndim, kc::kMaxBroadcastDims);
  kc::BroadcastIndex index;
  index.ndim = ndim;
  for (int d = 0; d < ndim; ++d) {
    index.sizes[d] = plan.sizes[d];
    index.a_strides[d] = plan.a_strides[d];
    index.b_strides[d] = plan.b_strides[d];
  }
  Tensor out = Tensor::empty(out_shape, a.dtype(), Device::CUDA);
  SSM_DISPATCH_FLOAT(a.dtype(), op, [&] {
    SSM_CUDA_CHECK(kc::binary_fwd<scalar_t>(to_cuda(kind), dev<scalar_t>(a), dev<scalar_t>(b),
                                            dev<scalar_t>(out), index, cuda::detail::stream()),
                   op);
  });
  return out;
}

#else  // no CUDA backend

namespace {
[[noreturn]] void no_cuda(const char* op) {
  SSM_FAIL("{}: this build has no CUDA backend (configure with -DSSM_CUDA=ON)", op);
}
}  // namespace

Tensor cuda_unary_forward(const char* op, cpu::UnaryOp, const Tensor&, double) {
  no_cuda(op);
}
Tensor cuda_unary_backward(const char* op, cpu::UnaryOp, const Tensor&, const Tensor&,
                           const Tensor&, double) {
  no_cuda(op);
}
Tensor cuda_binary_forward(const char* op, cpu::BinaryOp, const Tensor&, const Tensor&,
                           const Shape&, const cpu::BroadcastPlan&) {
  no_cuda(op);
}

#endif

}  // namespace ssm
