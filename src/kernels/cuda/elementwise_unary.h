#pragma once
// Internal: unary elementwise maps on CUDA with the CPU kernels' contract
// (kernels/cpu/elementwise.h): y = f(x), and gx = gy · f'(x) given x and y = f(x). Device
// pointers, contiguous, n elements; queued on `stream`. The ops mirror cpu::UnaryOp one to one
// (ops/cuda_elementwise.cpp maps between them; this header stays free of libssm headers because
// the .cu files build as C++17).
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

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

template <typename T>
cudaError_t unary_fwd(UnaryOp op, const T* x, T* y, int64_t n, double scalar, cudaStream_t stream);

// x and y are the forward's input and output; each rule reads whichever it needs.
template <typename T>
cudaError_t unary_bwd(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n,
                      double scalar, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
