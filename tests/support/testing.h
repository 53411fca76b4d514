#pragma once
// Shared helpers for the test suite: relative error and fresh random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "ssm/core/rng.h"
#include "ssm/core/tensor.h"

namespace ssm::testing {

// ‖a − b‖ / ‖b‖ over all elements (both converted to double). NaN anywhere gives +inf.
inline double rel_error(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(shape_str(a.shape()), shape_str(b.shape()));
  auto va = a.to_vector(), vb = b.to_vector();
  double d2 = 0, r2 = 0;
  for (size_t i = 0; i < va.size() && i < vb.size(); ++i) {
    if (!std::isfinite(va[i]) || !std::isfinite(vb[i])) return INFINITY;
    d2 += (va[i] - vb[i]) * (va[i] - vb[i]);
    r2 += vb[i] * vb[i];
  }
  return std::sqrt(d2) / std::max(std::sqrt(r2), 1e-300);
}

// A random normal tensor from a generator seeded per test, so inputs are fresh and non-zero.
inline Tensor random(const Shape& shape, DType dtype = DType::F64, uint64_t seed = 7,
                     bool requires_grad = false) {
  Generator g(seed);
  Tensor t = randn(shape, dtype, &g);
  if (requires_grad) t.requires_grad_();
  return t;
}

// Expects `statement` to throw ssm::Error whose message contains every fragment.
#define EXPECT_SSM_ERROR(statement, ...)                                              \
  do {                                                                                \
    try {                                                                             \
      statement;                                                                      \
      ADD_FAILURE() << "expected ssm::Error from " #statement;                        \
    } catch (const ::ssm::Error& e) {                                                 \
      for (const char* frag : {__VA_ARGS__})                                          \
        EXPECT_NE(std::string(e.what()).find(frag), std::string::npos)                \
            << "message '" << e.what() << "' lacks '" << frag << "'";                 \
    }                                                                                 \
  } while (0)

// Where the ssm CLI binary is (set by CTest), or empty.
inline std::string cli_path() {
  const char* p = std::getenv("SSM_CLI");
  return p ? p : "";
}

}  // namespace ssm::testing
