// Unary elementwise maps on CUDA and their derivatives: the formulas of the CPU kernels
// (kernels/cpu/elementwise_unary.cpp), evaluated in the tensor's own type T:
//   softplus(x) = log(1 + eˣ) (exactly x above 20)   softplus'(x) = σ(x) (exactly 1 above 20)
//   σ(x) = 1 / (1 + e⁻ˣ)                              σ'(x) = σ(1 − σ)
//   silu(x) = x·σ(x)                                  silu'(x) = σ + x·σ(1 − σ)
//   gelu_erf(x) = x·Φ(x), Φ(x) = ½(1 + erf(x/√2))     gelu' = Φ(x) + x·φ(x)
//   gelu_tanh(x) = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³)
//                  gelu' = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²), t = tanh u
// One kernel per (op, type), a grid-stride loop with one element per thread per step.
#include <cuda_runtime.h>

#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/elementwise_unary.h"

namespace ssm::kernels::cuda {

namespace {

using namespace math;

constexpr double kInvSqrt2 = 0.70710678118654752440;     // 1/√2
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1/√(2π)
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // √(2/π)
constexpr double kGeluCubic = 0.044715;
constexpr double kSoftplusThreshold = 20.0;

template <typename T>
__device__ __forceinline__ T sigmoid_of(T v) {
  return T(1) / (T(1) + exp_(-v));
}

template <UnaryOp kOp, typename T>
__device__ __forceinline__ T forward_of(T v, T s) {
  (void)s;  // read by the scalar ops only
  if constexpr (kOp == UnaryOp::Neg) {
    return -v;
  } else if constexpr (kOp == UnaryOp::Exp) {
    return exp_(v);
  } else if constexpr (kOp == UnaryOp::Log) {
    return log_(v);
  } else if constexpr (kOp == UnaryOp::Sqrt) {
    return sqrt_(v);
  } else if constexpr (kOp == UnaryOp::Square) {
    return v * v;
  } else if constexpr (kOp == UnaryOp::Softplus) {
    return v > T(kSoftplusThreshold) ? v : log1p_(exp_(v));
  } else if constexpr (kOp == UnaryOp::Sigmoid) {
    return sigmoid_of(v);
  } else if constexpr (kOp == UnaryOp::Tanh) {
    return tanh_(v);
  } else if constexpr (kOp == UnaryOp::Relu) {
    return v > T(0) ? v : T(0);
  } else if constexpr (kOp == UnaryOp::Silu) {
    return v * sigmoid_of(v);
  } else if constexpr (kOp == UnaryOp::GeluErf) {
    return T(0.5) * v * (T(1) + erf_(v * T(kInvSqrt2)));
  } else if constexpr (kOp == UnaryOp::GeluTanh) {
    const T u = T(kSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v);
    return T(0.5) * v * (T(1) + tanh_(u));
  } else if constexpr (kOp == UnaryOp::AddScalar) {
    return v + s;
  } else {
    static_assert(kOp == UnaryOp::MulScalar);
    return v * s;
  }
}

// gy · f'(x), from x (`in`) and y = f(x) (`out`).
template <UnaryOp kOp, typename T>
__device__ __forceinline__ T backward_of(T in, T out, T g, T s) {
  (void)in, (void)out, (void)s;  // each rule reads some of them
  if constexpr (kOp == UnaryOp::Neg) {
    return -g;
  } else if constexpr (kOp == UnaryOp::Exp) {
    return g * out;
  } else if constexpr (kOp == UnaryOp::Log) {
    return g / in;
  } else if constexpr (kOp == UnaryOp::Sqrt) {
    return g * T(0.5) / out;
  } else if constexpr (kOp == UnaryOp::Square) {
    return T(2) * in * g;
  } else if constexpr (kOp == UnaryOp::Softplus) {
    // The forward is exactly x above the threshold, so its derivative there is exactly 1.
    return in > T(kSoftplusThreshold) ? g : g * sigmoid_of(in);
  } else if constexpr (kOp == UnaryOp::Sigmoid) {
    return g * out * (T(1) - out);
  } else if constexpr (kOp == UnaryOp::Tanh) {
    return g * (T(1) - out * out);
  } else if constexpr (kOp == UnaryOp::Relu) {
    return in > T(0) ? g : T(0);
  } else if constexpr (kOp == UnaryOp::Silu) {
    const T sg = sigmoid_of(in);
    return g * (sg + in * sg * (T(1) - sg));
  } else if constexpr (kOp == UnaryOp::GeluErf) {
    const T cdf = T(0.5) * (T(1) + erf_(in * T(kInvSqrt2)));
    const T pdf = T(kInvSqrt2Pi) * exp_(T(-0.5) * in * in);
    return g * (cdf + in * pdf);
  } else if constexpr (kOp == UnaryOp::GeluTanh) {
    const T u = T(kSqrt2OverPi) * (in + T(kGeluCubic) * in * in * in);
    const T t = tanh_(u);
    const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCubic) * in * in);
    return g * (T(0.5) * (T(1) + t) + T(0.5) * in * (T(1) - t * t) * du);
  } else if constexpr (kOp == UnaryOp::AddScalar) {
    return g;
  } else {
    static_assert(kOp == UnaryOp::MulScalar);
    return g * s;
  }
}

template <UnaryOp kOp, typename T>
__global__ void unary_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, T s) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = forward_of<kOp>(x[i], s);
}

// Which of x and y a backward rule reads: the other is never loaded (a quarter of the traffic).
__host__ __device__ constexpr bool reads_input(UnaryOp op) {
  return op == UnaryOp::Log || op == UnaryOp::Square || op == UnaryOp::Softplus ||
         op == UnaryOp::Relu || op == UnaryOp::Silu || op == UnaryOp::GeluErf ||
         op == UnaryOp::GeluTanh;
}
__host__ __device__ constexpr bool reads_output(UnaryOp op) {
  return op == UnaryOp::Exp || op == UnaryOp::Sqrt || op == UnaryOp::Sigmoid || op == UnaryOp::Tanh;
}

template <UnaryOp kOp, typename T>
__global__ void unary_bwd_kernel(const T* __restrict__ x, const T* __restrict__ y,
                                 const T* __restrict__ gy, T* __restrict__ gx, int64_t n, T s) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) {
    T in = T(0), out = T(0);
    if constexpr (reads_input(kOp)) in = x[i];
    if constexpr (reads_output(kOp)) out = y[i];
    gx[i] = backward_of<kOp>(in, out, gy[i], s);
  }
}

template <UnaryOp kOp, typename T>
cudaError_t launch_fwd(const T* x, T* y, int64_t n, double scalar, cudaStream_t stream) {
  unary_fwd_kernel<kOp, T>
      <<<grid_stride_blocks(n), kElementwiseThreads, 0, stream>>>(x, y, n, static_cast<T>(scalar));
  return cudaGetLastError();
}

template <UnaryOp kOp, typename T>
cudaError_t launch_bwd(const T* x, const T* y, const T* gy, T* gx, int64_t n, double scalar,
                       cudaStream_t stream) {
  unary_bwd_kernel<kOp, T><<<grid_stride_blocks(n), kElementwiseThreads, 0, stream>>>(
      x, y, gy, gx, n, static_cast<T>(scalar));
  return cudaGetLastError();
}

}  // namespace

// One case per op: the switch turns the runtime op into the kernel's template argument.
#define SSM_UNARY_CASES(LAUNCH, ...)                  \
  switch (op) {                                       \
    case UnaryOp::Neg:                                \
      return LAUNCH<UnaryOp::Neg>(__VA_ARGS__);       \
    case UnaryOp::Exp:                                \
      return LAUNCH<UnaryOp::Exp>(__VA_ARGS__);       \
    case UnaryOp::Log:                                \
      return LAUNCH<UnaryOp::Log>(__VA_ARGS__);       \
    case UnaryOp::Sqrt:                               \
      return LAUNCH<UnaryOp::Sqrt>(__VA_ARGS__);      \
    case UnaryOp::Square:                             \
      return LAUNCH<UnaryOp::Square>(__VA_ARGS__);    \
    case UnaryOp::Softplus:                           \
      return LAUNCH<UnaryOp::Softplus>(__VA_ARGS__);  \
    case UnaryOp::Sigmoid:                            \
      return LAUNCH<UnaryOp::Sigmoid>(__VA_ARGS__);   \
    case UnaryOp::Tanh:                               \
      return LAUNCH<UnaryOp::Tanh>(__VA_ARGS__);      \
    case UnaryOp::Relu:                               \
      return LAUNCH<UnaryOp::Relu>(__VA_ARGS__);      \
    case UnaryOp::Silu:                               \
      return LAUNCH<UnaryOp::Silu>(__VA_ARGS__);      \
    case UnaryOp::GeluErf:                            \
      return LAUNCH<UnaryOp::GeluErf>(__VA_ARGS__);   \
    case UnaryOp::GeluTanh:                           \
      return LAUNCH<UnaryOp::GeluTanh>(__VA_ARGS__);  \
    case UnaryOp::AddScalar:                          \
      return LAUNCH<UnaryOp::AddScalar>(__VA_ARGS__); \
    case UnaryOp::MulScalar:                          \
      return LAUNCH<UnaryOp::MulScalar>(__VA_ARGS__); \
  }                                                   \
  return cudaErrorInvalidValue

template <typename T>
cudaError_t unary_fwd(UnaryOp op, const T* x, T* y, int64_t n, double scalar, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  SSM_UNARY_CASES(launch_fwd, x, y, n, scalar, stream);
}

template <typename T>
cudaError_t unary_bwd(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n,
                      double scalar, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  SSM_UNARY_CASES(launch_bwd, x, y, gy, gx, n, scalar, stream);
}

#undef SSM_UNARY_CASES

template cudaError_t unary_fwd<float>(UnaryOp, const float*, float*, int64_t, double, cudaStream_t);
template cudaError_t unary_fwd<double>(UnaryOp, const double*, double*, int64_t, double,
                                       cudaStream_t);
template cudaError_t unary_bwd<float>(UnaryOp, const float*, const float*, const float*, float*,
                                      int64_t, double, cudaStream_t);
template cudaError_t unary_bwd<double>(UnaryOp, const double*, const double*, const double*,
                                       double*, int64_t, double, cudaStream_t);

}  // namespace ssm::kernels::cuda
