// Unary elementwise maps and their derivatives, written from the definitions:
//   softplus(x) = log(1 + eˣ)                  softplus'(x) = σ(x)
//   σ(x) = 1 / (1 + e⁻ˣ)                       σ'(x) = σ(1 − σ)
//   silu(x) = x·σ(x)                           silu'(x) = σ + x·σ(1 − σ)
//   gelu_erf(x) = x·Φ(x), Φ(x) = ½(1 + erf(x/√2))          gelu' = Φ(x) + x·φ(x)
//   gelu_tanh(x) = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³)
//                  gelu' = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²), t = tanh u
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <unsupported/Eigen/SpecialFunctions>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/scan_math.h"

namespace ssm::cpu {

namespace {

// float GELU goes through Eigen's vectorised erf and exp (a few ulp from std::erf): the scalar
// libm erf was the largest elementwise cost of an S4 block. double keeps std::erf, which the
// float64 references are checked against.
constexpr int64_t kEigenBlock = 1024;

void gelu_erf_forward_f32(const float* x, float* y, int64_t n);
void exp_f32(const float* x, float* y, int64_t n);
void gelu_erf_backward_f32(const float* x, const float* gy, float* gx, int64_t n);

constexpr double kInvSqrt2 = 0.70710678118654752440;     // 1/√2
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1/√(2π)
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // √(2/π)
constexpr double kGeluCubic = 0.044715;
// Above this, log(1 + eˣ) equals x to double precision (and eˣ would soon overflow float).
constexpr double kSoftplusThreshold = 20.0;

// 1/(1 + e⁻ˣ) is already stable: for x → −∞ the denominator becomes +inf and the result 0.
template <typename T>
inline T sigmoid_of(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

template <typename T, typename F>
void map1(const T* __restrict x, T* __restrict y, int64_t n, F f) {
#pragma omp parallel for if (n > kParallelThreshold) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

template <typename T, typename F>
void map3(const T* __restrict x, const T* __restrict y, const T* __restrict gy, T* __restrict gx,
          int64_t n, F f) {
#pragma omp parallel for if (n > kParallelThreshold) schedule(static)
  for (int64_t i = 0; i < n; ++i) gx[i] = f(x[i], y[i], gy[i]);
}

void gelu_erf_forward_f32(const float* x, float* y, int64_t n) {
#pragma omp parallel for if (n > kParallelThreshold) schedule(static)
  for (int64_t b = 0; b < n; b += kEigenBlock) {
    const int64_t m = std::min(kEigenBlock, n - b);
    Eigen::Map<const Eigen::ArrayXf> xv(x + b, m);
    Eigen::Map<Eigen::ArrayXf> yv(y + b, m);
    yv = 0.5f * xv * (1.0f + (xv * float(kInvSqrt2)).erf());
  }
}

// float exp through the scan kernels' vectorisable exp (a few ulp from std::exp; Eigen's
// AVX-512 exp trips GCC 12's -Wmaybe-uninitialized): the scalar libm call was ~10% of a Mamba
// decode step, which forms A = −exp(A_log) in every layer.
void exp_f32(const float* __restrict x, float* __restrict y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelThreshold) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = kernels::cpu::detail::vexp(x[i]);
}

void gelu_erf_backward_f32(const float* x, const float* gy, float* gx, int64_t n) {
#pragma omp parallel for if (n > kParallelThreshold) schedule(static)
  for (int64_t b = 0; b < n; b += kEigenBlock) {
    const int64_t m = std::min(kEigenBlock, n - b);
    Eigen::Map<const Eigen::ArrayXf> xv(x + b, m), gv(gy + b, m);
    Eigen::Map<Eigen::ArrayXf> out(gx + b, m);
    const Eigen::ArrayXf cdf = 0.5f * (1.0f + (xv * float(kInvSqrt2)).erf());
    const Eigen::ArrayXf pdf = float(kInvSqrt2Pi) * (-0.5f * xv * xv).exp();
    out = gv * (cdf + xv * pdf);
  }
}

}  // namespace

template <typename T>
void unary_forward(UnaryOp op, const T* x, T* y, int64_t n, double scalar) {
  const T s = static_cast<T>(scalar);
  switch (op) {
    case UnaryOp::Neg:
      return map1(x, y, n, [](T v) { return -v; });
    case UnaryOp::Exp:
      if constexpr (std::is_same_v<T, float>) return exp_f32(x, y, n);
      return map1(x, y, n, [](T v) { return std::exp(v); });
    case UnaryOp::Log:
      return map1(x, y, n, [](T v) { return std::log(v); });
    case UnaryOp::Sqrt:
      return map1(x, y, n, [](T v) { return std::sqrt(v); });
    case UnaryOp::Square:
      return map1(x, y, n, [](T v) { return v * v; });
    case UnaryOp::Softplus:
      return map1(x, y, n,
                  [](T v) { return v > T(kSoftplusThreshold) ? v : std::log1p(std::exp(v)); });
    case UnaryOp::Sigmoid:
      return map1(x, y, n, [](T v) { return sigmoid_of(v); });
    case UnaryOp::Tanh:
      return map1(x, y, n, [](T v) { return std::tanh(v); });
    case UnaryOp::Relu:
      return map1(x, y, n, [](T v) { return v > T(0) ? v : T(0); });
    case UnaryOp::Silu:
      return map1(x, y, n, [](T v) { return v * sigmoid_of(v); });
    case UnaryOp::GeluErf:
      if constexpr (std::is_same_v<T, float>) return gelu_erf_forward_f32(x, y, n);
      return map1(x, y, n, [](T v) { return T(0.5) * v * (T(1) + std::erf(v * T(kInvSqrt2))); });
    case UnaryOp::GeluTanh:
      return map1(x, y, n, [](T v) {
        const T u = T(kSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v);
        return T(0.5) * v * (T(1) + std::tanh(u));
      });
    case UnaryOp::AddScalar:
      return map1(x, y, n, [s](T v) { return v + s; });
    case UnaryOp::MulScalar:
      return map1(x, y, n, [s](T v) { return v * s; });
  }
}

template <typename T>
void unary_backward(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n,
                    double scalar) {
  const T s = static_cast<T>(scalar);
  switch (op) {
    case UnaryOp::Neg:
      return map3(x, y, gy, gx, n, [](T, T, T g) { return -g; });
    case UnaryOp::Exp:
      return map3(x, y, gy, gx, n, [](T, T out, T g) { return g * out; });
    case UnaryOp::Log:
      return map3(x, y, gy, gx, n, [](T in, T, T g) { return g / in; });
    case UnaryOp::Sqrt:
      return map3(x, y, gy, gx, n, [](T, T out, T g) { return g * T(0.5) / out; });
    case UnaryOp::Square:
      return map3(x, y, gy, gx, n, [](T in, T, T g) { return T(2) * in * g; });
    case UnaryOp::Softplus:
      // The forward is exactly x above the threshold, so its derivative there is exactly 1.
      return map3(x, y, gy, gx, n,
                  [](T in, T, T g) { return in > T(kSoftplusThreshold) ? g : g * sigmoid_of(in); });
    case UnaryOp::Sigmoid:
      return map3(x, y, gy, gx, n, [](T, T out, T g) { return g * out * (T(1) - out); });
    case UnaryOp::Tanh:
      return map3(x, y, gy, gx, n, [](T, T out, T g) { return g * (T(1) - out * out); });
    case UnaryOp::Relu:
      return map3(x, y, gy, gx, n, [](T in, T, T g) { return in > T(0) ? g : T(0); });
    case UnaryOp::Silu:
      return map3(x, y, gy, gx, n, [](T in, T, T g) {
        const T sg = sigmoid_of(in);
        return g * (sg + in * sg * (T(1) - sg));
      });
    case UnaryOp::GeluErf:
      if constexpr (std::is_same_v<T, float>) return gelu_erf_backward_f32(x, gy, gx, n);
      return map3(x, y, gy, gx, n, [](T in, T, T g) {
        const T cdf = T(0.5) * (T(1) + std::erf(in * T(kInvSqrt2)));
        const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * in * in);
        return g * (cdf + in * pdf);
      });
    case UnaryOp::GeluTanh:
      return map3(x, y, gy, gx, n, [](T in, T, T g) {
        const T u = T(kSqrt2OverPi) * (in + T(kGeluCubic) * in * in * in);
        const T t = std::tanh(u);
        const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCubic) * in * in);
        return g * (T(0.5) * (T(1) + t) + T(0.5) * in * (T(1) - t * t) * du);
      });
    case UnaryOp::AddScalar:
      return map3(x, y, gy, gx, n, [](T, T, T g) { return g; });
    case UnaryOp::MulScalar:
      return map3(x, y, gy, gx, n, [s](T, T, T g) { return g * s; });
  }
}

template void unary_forward<float>(UnaryOp, const float*, float*, int64_t, double);
template void unary_forward<double>(UnaryOp, const double*, double*, int64_t, double);
template void unary_backward<float>(UnaryOp, const float*, const float*, const float*, float*,
                                    int64_t, double);
template void unary_backward<double>(UnaryOp, const double*, const double*, const double*, double*,
                                     int64_t, double);

}  // namespace ssm::cpu
