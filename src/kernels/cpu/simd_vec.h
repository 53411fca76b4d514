#pragma once
// 256-bit vectors of float / double through the GCC/Clang vector extension, for kernels whose
// accumulators must stay in registers: written as plain arrays under `omp simd`, the compiler
// tends to keep such accumulators in memory and the loop becomes store-bound.
// Arithmetic mixes a vector with a scalar by broadcasting the scalar.
#include <cstdint>
#include <cstring>

namespace ssm::kernels::cpu::simd {

// The attribute only applies to concrete types, hence the typedefs and the trait.
typedef float Float8 __attribute__((vector_size(32)));
typedef double Double4 __attribute__((vector_size(32)));

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  using type = Float8;
};
template <>
struct VecOf<double> {
  using type = Double4;
};

template <typename T>
using Vec = typename VecOf<T>::type;

template <typename T>
constexpr int64_t kLanes = static_cast<int64_t>(sizeof(Vec<T>) / sizeof(T));

template <typename T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
inline void store(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof v);
}

template <typename T>
inline T sum_lanes(Vec<T> v) {
  T s = 0;
  for (int64_t i = 0; i < kLanes<T>; ++i) s += v[i];
  return s;
}

}  // namespace ssm::kernels::cpu::simd
