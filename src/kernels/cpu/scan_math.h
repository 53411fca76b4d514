#pragma once
// Numeric helpers shared by the selective-scan and SSD CPU kernels, all written so that a
// `#pragma omp simd` loop around them becomes SIMD code.
//
// vexp: libm's exp is an opaque scalar call unless the build uses -ffast-math, which would
// stop the compiler from vectorising the state loops (one exp per state element and step is
// the dominant cost of a selective scan). This exp is written with plain arithmetic and bit
// operations only, so a `#pragma omp simd` loop around it becomes SIMD code:
//   exp(x) = 2^k · exp(r),  k = round(x · log2 e),  r = x − k · ln 2 (|r| ≤ ln2 / 2),
// with exp(r) from its Taylor series (degree 7 for float, 13 for double: truncation error
// below half an ulp) and 2^k built directly in the exponent bits.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace ssm::kernels::cpu::detail {

// A heap buffer left uninitialised. Large work buffers are written in full by the parallel
// phases before they are read, so this spreads the first-touch page faults over the threads
// instead of zero-filling serially.
template <typename T>
std::unique_ptr<T[]> uninitialized_buffer(int64_t n) {
  return std::make_unique_for_overwrite<T[]>(static_cast<size_t>(n));
}

template <typename T>
struct ExpTraits;

template <>
struct ExpTraits<float> {
  using Bits = int32_t;
  static constexpr int kMantissaBits = 23;
  static constexpr Bits kExponentBias = 127;
  static constexpr float kShifter = 12582912.0f;  // 1.5·2^23: x + kShifter rounds x to an integer
  static constexpr float kLowest = -87.0f;        // below: the result would be subnormal → 0
  static constexpr float kHighest = 88.0f;        // above: overflow → +inf
  static constexpr int kDegree = 7;
};

template <>
struct ExpTraits<double> {
  using Bits = int64_t;
  static constexpr int kMantissaBits = 52;
  static constexpr Bits kExponentBias = 1023;
  static constexpr double kShifter = 6755399441055744.0;  // 1.5·2^52
  static constexpr double kLowest = -708.0;
  static constexpr double kHighest = 709.0;
  static constexpr int kDegree = 13;
};

// Horner evaluation of Σ_{i=0..kDegree} r^i / i!, unrolled at compile time.
template <typename T, int kK>
inline constexpr T kInverseFactorial = [] {
  double f = 1.0;
  for (int i = 2; i <= kK; ++i) f *= i;
  return static_cast<T>(1.0 / f);
}();

template <typename T, int kDegree, int... kI>
[[gnu::always_inline]] inline T exp_taylor(T r, std::integer_sequence<int, kI...>) {
  T p = kInverseFactorial<T, kDegree>;
  // kI = 0..kDegree−1; visit the coefficients from degree kDegree−1 down to 0.
  ((p = p * r + kInverseFactorial<T, kDegree - 1 - kI>), ...);
  return p;
}

// exp(x) for x known to lie in [kLowest, kHighest] (no NaN): the range handling of vexp
// costs about as much as the polynomial, so callers that can bound their arguments for a
// whole block (see exp_arguments_in_range) use this form inside the block.
template <typename T>
[[gnu::always_inline]] inline T vexp_in_range(T x) {
  using Tr = ExpTraits<T>;
  using Bits = typename Tr::Bits;
  constexpr T kLn2Hi = static_cast<T>(0.693145751953125);
  constexpr T kLn2Lo = static_cast<T>(1.42860682030941723212e-6);
  constexpr T kLog2e = static_cast<T>(1.4426950408889634074);
  const T shifted = x * kLog2e + Tr::kShifter;
  const T k = shifted - Tr::kShifter;
  const Bits k_int = std::bit_cast<Bits>(shifted) - std::bit_cast<Bits>(Tr::kShifter);
  const T r = (x - k * kLn2Hi) - k * kLn2Lo;
  const T p = exp_taylor<T, Tr::kDegree>(r, std::make_integer_sequence<int, Tr::kDegree>());
  return p * std::bit_cast<T>((k_int + Tr::kExponentBias) << Tr::kMantissaBits);
}

// The smallest and largest of values[0..n), and whether none is NaN.
template <typename T>
struct ValueRange {
  T lo, hi;
  bool finite;
};
template <typename T>
inline ValueRange<T> value_range(const T* values, int64_t n) {
  ValueRange<T> r{values[0], values[0], true};
  for (int64_t k = 0; k < n; ++k) {
    r.finite = r.finite && values[k] == values[k];
    r.lo = values[k] < r.lo ? values[k] : r.lo;
    r.hi = values[k] > r.hi ? values[k] : r.hi;
  }
  return r;
}

// True when every product s·a with s in steps[0..n_steps) and a in a[0..n_a) is a valid
// argument of vexp_in_range. A product is bilinear, so the corners of the box bound it.
template <typename T>
inline bool exp_arguments_in_range(const T* steps, int64_t n_steps, const T* a, int64_t n_a) {
  using Tr = ExpTraits<T>;
  const ValueRange<T> s = value_range(steps, n_steps), r = value_range(a, n_a);
  bool ok = s.finite && r.finite;
  for (T corner : {s.lo * r.lo, s.lo * r.hi, s.hi * r.lo, s.hi * r.hi})
    ok = ok && corner >= Tr::kLowest && corner <= Tr::kHighest;
  return ok;
}

// Maps a float's bit pattern to an integer whose order is the float's order (for non-NaN
// values); applying it twice gives the bits back.
template <typename Bits>
[[gnu::always_inline]] inline Bits ordered_key(Bits bits) {
  constexpr Bits kMagnitude = std::numeric_limits<Bits>::max();
  const Bits negative = -static_cast<Bits>(bits < 0);  // all ones for negative floats
  return bits ^ (negative & kMagnitude);
}

// exp(x), vectorisable. Accurate to a few ulp on [kLowest, kHighest]; returns 0 below that
// range (true value < 1.7e-38 for float, < 3.3e-308 for double), +inf above, NaN for NaN.
//
// Range checks use integer compares and the results are combined with bit masks: a floating
// compare or a select on the result lets GCC move the polynomial into a branch, and with
// -ftrapping-math (the default) it then refuses to if-convert the loop back to SIMD code.
template <typename T>
[[gnu::always_inline]] inline T vexp(T x) {
  using Tr = ExpTraits<T>;
  using Bits = typename Tr::Bits;
  // ln 2 split in two: the high part has 16 significant bits, so k · kLn2Hi is exact.
  constexpr T kLn2Hi = static_cast<T>(0.693145751953125);
  constexpr T kLn2Lo = static_cast<T>(1.42860682030941723212e-6);
  constexpr T kLog2e = static_cast<T>(1.4426950408889634074);
  constexpr Bits kInfBits = std::bit_cast<Bits>(std::numeric_limits<T>::infinity());
  const Bits key_lowest = ordered_key(std::bit_cast<Bits>(Tr::kLowest));
  const Bits key_highest = ordered_key(std::bit_cast<Bits>(Tr::kHighest));

  const Bits x_bits = std::bit_cast<Bits>(x);
  const Bits key = ordered_key(x_bits);
  const Bits below = -static_cast<Bits>(key < key_lowest);
  const Bits above = -static_cast<Bits>(key > key_highest);
  const Bits is_nan = -static_cast<Bits>((x_bits & std::numeric_limits<Bits>::max()) > kInfBits);
  const Bits clamped_key = key < key_lowest ? key_lowest : (key > key_highest ? key_highest : key);
  const T xc = std::bit_cast<T>(ordered_key(clamped_key));

  const T shifted = xc * kLog2e + Tr::kShifter;
  const T k = shifted - Tr::kShifter;  // round(xc · log2 e) as a float
  // The low mantissa bits of `shifted` hold k as a two's-complement integer.
  const Bits k_int = std::bit_cast<Bits>(shifted) - std::bit_cast<Bits>(Tr::kShifter);
  const T r = (xc - k * kLn2Hi) - k * kLn2Lo;
  const T p = exp_taylor<T, Tr::kDegree>(r, std::make_integer_sequence<int, Tr::kDegree>());
  const T scale = std::bit_cast<T>((k_int + Tr::kExponentBias) << Tr::kMantissaBits);
  const Bits result = std::bit_cast<Bits>(p * scale);
  return std::bit_cast<T>((result & ~(below | above | is_nan)) | (above & kInfBits) |
                          (is_nan & x_bits));
}

// log(1 + t) for t in [0, 1], vectorisable: with s = t / (2 + t) ∈ [0, 1/3],
// log(1 + t) = 2·atanh(s) = 2·(s + s³/3 + s⁵/5 + …). No cancellation for small t, and the
// series converges geometrically (s² ≤ 1/9): 8 terms for float, 17 for double.
template <typename T, int kTerms, int... kI>
[[gnu::always_inline]] inline T atanh_series(T s2, std::integer_sequence<int, kI...>) {
  T p = T(1) / T(2 * kTerms - 1);
  // kI = 0..kTerms−2: the coefficients 1/(2i+1) for i = kTerms−2 down to 0.
  ((p = p * s2 + T(1) / T(2 * (kTerms - 2 - kI) + 1)), ...);
  return p;
}

template <typename T>
[[gnu::always_inline]] inline T vlog1p_unit(T t) {
  constexpr int kTerms = sizeof(T) == 4 ? 8 : 17;
  const T s = t / (T(2) + t);
  return T(2) * s * atanh_series<T, kTerms>(s * s, std::make_integer_sequence<int, kTerms - 1>());
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^−|x|), vectorisable, no overflow.
template <typename T>
[[gnu::always_inline]] inline T vsoftplus(T x) {
  using Bits = typename ExpTraits<T>::Bits;
  const Bits bits = std::bit_cast<Bits>(x);
  const Bits negative = -static_cast<Bits>(bits < 0);
  const T abs_x = std::bit_cast<T>(bits & std::numeric_limits<Bits>::max());
  const T positive_part = std::bit_cast<T>(bits & ~negative);
  return positive_part + vlog1p_unit(vexp(-abs_x));
}

// σ(x) = 1 / (1 + e^−x), vectorisable (e^−x overflows to +inf for very negative x: σ = 0).
template <typename T>
[[gnu::always_inline]] inline T vsigmoid(T x) {
  return T(1) / (T(1) + vexp(-x));
}

#if defined(__AVX__)
[[gnu::always_inline]] inline float sum_vector(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
[[gnu::always_inline]] inline double sum_vector(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
#endif

// Σ v[0..kN) for a compile-time kN, as a tree of vector adds. GCC 12 compiles an
// `omp simd reduction(+)` over a fixed 16-float loop into 15 dependent scalar adds with a
// shuffle each; in the selective scan those were the hottest instructions. Callers fill v in
// their SIMD loop and sum it here once per step. 256-bit halves only: GCC 12's AVX-512
// reductions and extracts trip -Wmaybe-uninitialized (on _mm256_undefined_pd) when inlined.
template <typename T, int kN>
[[gnu::always_inline]] inline T tree_sum(const T* __restrict v) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float> && kN % 16 == 0) {
    // One 512-bit vector per 16 entries, folded to 256 bits by a generic shuffle.
    typedef float Float16 __attribute__((vector_size(64)));
    typedef float Float8 __attribute__((vector_size(32)));
    Float16 acc, next;
    std::memcpy(&acc, v, sizeof acc);
    for (int i = 16; i < kN; i += 16) {
      std::memcpy(&next, v + i, sizeof next);
      acc += next;
    }
    const Float8 lo = __builtin_shufflevector(acc, acc, 0, 1, 2, 3, 4, 5, 6, 7);
    const Float8 hi = __builtin_shufflevector(acc, acc, 8, 9, 10, 11, 12, 13, 14, 15);
    return sum_vector(static_cast<__m256>(lo + hi));
  }
#endif
#if defined(__AVX__)
  if constexpr (std::is_same_v<T, float> && kN % 8 == 0) {
    __m256 acc = _mm256_loadu_ps(v);
    for (int i = 8; i < kN; i += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(v + i));
    return sum_vector(acc);
  }
  if constexpr (std::is_same_v<T, double> && kN % 4 == 0) {
    __m256d acc = _mm256_loadu_pd(v);
    for (int i = 4; i < kN; i += 4) acc = _mm256_add_pd(acc, _mm256_loadu_pd(v + i));
    return sum_vector(acc);
  }
#endif
  if constexpr (kN == 1) {
    return v[0];
  } else {
    static_assert(kN % 2 == 0, "tree_sum: kN must be a power of two");
    return tree_sum<T, kN / 2>(v) + tree_sum<T, kN / 2>(v + kN / 2);
  }
}

// Σ v[0..n): the tree above for the specialised sizes (kN > 0), else a plain reduction.
template <typename T, int kN>
[[gnu::always_inline]] inline T sum_values(const T* __restrict v, int64_t n) {
  if constexpr (kN > 0) {
    return tree_sum<T, kN>(v);
  } else {
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += v[i];
    return s;
  }
}

}  // namespace ssm::kernels::cpu::detail
