#include "ssm/core/rng.h"

#include <cmath>

namespace ssm {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

void Generator::manual_seed(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

uint64_t Generator::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Generator::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Generator::normal() {
  // Box–Muller; 1 - u keeps the log argument in (0, 1].
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

uint64_t Generator::below(uint64_t n) {
  SSM_CHECK(n > 0, "Generator::below: n must be positive");
  // Rejection sampling removes modulo bias.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do r = next_u64();
  while (r >= limit);
  return r % n;
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

namespace {
template <typename F>
Tensor fill_random(const Shape& shape, DType dtype, Generator* gen, const char* what, F draw) {
  Generator& g = gen ? *gen : default_generator();
  Tensor t = Tensor::empty(shape, dtype);
  SSM_DISPATCH_FLOAT(dtype, what, [&] {
    scalar_t* p = t.data<scalar_t>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = static_cast<scalar_t>(draw(g));
  });
  return t;
}
}  // namespace

Tensor randn(const Shape& shape, DType dtype, Generator* gen) {
  return fill_random(shape, dtype, gen, "randn", [](Generator& g) { return g.normal(); });
}

Tensor rand_uniform(const Shape& shape, double low, double high, DType dtype, Generator* gen) {
  SSM_CHECK(high >= low, "rand_uniform: high {} < low {}", high, low);
  return fill_random(shape, dtype, gen, "rand_uniform",
                     [&](Generator& g) { return low + (high - low) * g.uniform(); });
}

Tensor bernoulli(const Shape& shape, double p, DType dtype, Generator* gen) {
  SSM_CHECK(p >= 0.0 && p <= 1.0, "bernoulli: p must be in [0, 1], got {}", p);
  return fill_random(shape, dtype, gen, "bernoulli",
                     [&](Generator& g) { return g.uniform() < p ? 1.0 : 0.0; });
}

}  // namespace ssm
