#include <cstdlib>
#include <new>

#include "core/cuda/memory.h"
#include "ssm/core/tensor.h"

namespace ssm {

namespace {
constexpr size_t kAlignment = 64;  // one cache line; also what AVX-512 loads like
}

Storage::Storage(size_t n, Device dev) : nbytes(n), device(dev) {
  if (dev == Device::CUDA) {
    data = cuda::detail::allocate(n);
    return;
  }
  size_t rounded = (n + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  data = std::aligned_alloc(kAlignment, rounded);
  if (data == nullptr) throw std::bad_alloc();
}

Storage::~Storage() {
  if (device == Device::CUDA)
    cuda::detail::deallocate(data, nbytes);
  else
    std::free(data);
}

}  // namespace ssm
