#pragma once
// Decoding of the 16-bit float formats found in weight files, to float32 (exact: every
// 16-bit value is representable in float32).
//   bfloat16: the top 16 bits of a float32 (1 sign, 8 exponent, 7 mantissa bits).
//   IEEE half: 1 sign, 5 exponent (bias 15), 10 mantissa bits; subnormals, ±inf, NaN.
#include <cstdint>

namespace ssm::io {

float bf16_to_float(uint16_t bits);
float f16_to_float(uint16_t bits);

}  // namespace ssm::io
