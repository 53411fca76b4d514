#pragma once
// Seeded random numbers that are identical on every machine: our own generator
// (SplitMix64-seeded xoshiro256**) and our own transforms (the standard library's
// distributions are implementation-defined, so they are not used).
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) { manual_seed(seed); }
  void manual_seed(uint64_t seed);
  uint64_t next_u64();
  double uniform();          // [0, 1)
  double normal();           // standard normal (Box–Muller, one value per call)
  uint64_t below(uint64_t n);  // uniform integer in [0, n)

 private:
  uint64_t s_[4];
};

Generator& default_generator();
void manual_seed(uint64_t seed);  // seeds the default generator

// Tensor factories drawing from `gen` (the default generator when omitted).
Tensor randn(const Shape& shape, DType dtype = DType::F32, Generator* gen = nullptr);
Tensor rand_uniform(const Shape& shape, double low, double high, DType dtype = DType::F32,
                    Generator* gen = nullptr);
Tensor bernoulli(const Shape& shape, double p, DType dtype = DType::F32, Generator* gen = nullptr);

}  // namespace ssm
