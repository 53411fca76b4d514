#include <cstdlib>
#include <new>

#include "ssm/core/tensor.h"

namespace ssm {

namespace {
constexpr size_t kAlignment = 64;  // one cache line; also what AVX-512 loads like
}

Storage::Storage(size_t n, Device dev) : nbytes(n), device(dev) {
  SSM_CHECK(dev == Device::CPU, "Storage: the CUDA backend is not built into this library yet");
  size_t rounded = (n + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  data = std::aligned_alloc(kAlignment, rounded);
  if (data == nullptr) throw std::bad_alloc();
}

Storage::~Storage() { std::free(data); }

}  // namespace ssm
