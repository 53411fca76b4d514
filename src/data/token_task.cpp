#include "ssm/data/token_task.h"

#include "ssm/core/error.h"

namespace ssm::data {

Example to_example(const TokenSequence& s) {
  SSM_CHECK(s.input.size() == s.target.size() && !s.input.empty(),
            "to_example: input ({}) and target ({}) must be non-empty and equally long",
            s.input.size(), s.target.size());
  const int64_t L = static_cast<int64_t>(s.input.size());
  return {Tensor::from_data(s.input, {L}), Tensor::from_data(s.target, {L})};
}

uint64_t example_seed(uint64_t seed, int64_t index) {
  // Two rounds of the SplitMix64 finaliser over (seed, index).
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  return mix(mix(seed) ^ static_cast<uint64_t>(index));
}

GeneratedTokenDataset::GeneratedTokenDataset(int64_t size, uint64_t seed, MakeFn make)
    : size_(size), seed_(seed), make_(std::move(make)) {
  SSM_CHECK(size >= 0, "GeneratedTokenDataset: size must be ≥ 0, got {}", size);
}

TokenSequence GeneratedTokenDataset::sequence(int64_t index) const {
  SSM_CHECK(index >= 0 && index < size_, "GeneratedTokenDataset: index {} outside [0, {})", index,
            size_);
  Generator gen(example_seed(seed_, index));
  return make_(gen);
}

Example GeneratedTokenDataset::get(int64_t index) const {
  return to_example(sequence(index));
}

std::vector<int64_t> sample_sorted_positions(int64_t n, int64_t count, Generator& gen) {
  SSM_CHECK(count >= 0 && count <= n, "sample_sorted_positions: cannot choose {} of {}", count, n);
  // Knuth's algorithm S: keep position i with probability (still needed) / (still left).
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < n && static_cast<int64_t>(out.size()) < count; ++i) {
    const int64_t needed = count - static_cast<int64_t>(out.size());
    if (static_cast<int64_t>(gen.below(static_cast<uint64_t>(n - i))) < needed) out.push_back(i);
  }
  return out;
}

void check_at_least(int64_t value, int64_t min, const char* task, const std::string& key_prefix,
                    const char* key) {
  SSM_CHECK(value >= min, "{}: '{}{}' must be ≥ {}, got {}", task, key_prefix, key, min, value);
}

}  // namespace ssm::data
