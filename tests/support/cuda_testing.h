#pragma once
// Helpers for the CUDA tests: skipping without a device, NaN-poisoned device allocations, and
// moving optional tensors between devices.
#include <gtest/gtest.h>

#include "ssm/core/cuda.h"
#include "ssm/core/tensor.h"

namespace ssm::testing {

// GTEST_SKIP with the reason when this build or this machine cannot run CUDA code.
#define SSM_SKIP_WITHOUT_CUDA()                                                                 \
  do {                                                                                          \
    if (!::ssm::cuda::available())                                                              \
      GTEST_SKIP() << (::ssm::cuda::built() ? "no CUDA device on this machine"                  \
                                            : "this build has no CUDA backend (SSM_CUDA=OFF)"); \
  } while (0)

// While alive, every device block handed out is filled with NaN bytes first: an output element
// a kernel fails to write shows up as NaN, which every comparison rejects.
struct PoisonDeviceMemory {
  PoisonDeviceMemory() { cuda::set_poison_allocations(true); }
  ~PoisonDeviceMemory() { cuda::set_poison_allocations(false); }
};

inline Tensor to_device(const Tensor& t, Device device) {
  return t.defined() ? t.to(device) : Tensor();
}

}  // namespace ssm::testing
