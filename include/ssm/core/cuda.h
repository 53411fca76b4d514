#pragma once
// The CUDA runtime as the rest of the library sees it: whether the backend was built, whether a
// device is usable, and the library's one stream. Every function exists in every build; without
// the backend, `built()` and `available()` are false and the others throw ssm::Error.
//
// Device memory comes from a caching allocator over cudaMalloc (never managed memory): freed
// blocks are kept for reuse, bucketed by rounded size. All work runs in order on one stream, so a
// block freed by one op and handed to the next is only touched after the first op's kernels.
#include <cstddef>
#include <string>

namespace ssm::cuda {

bool built();                      // this library was compiled with the CUDA backend
bool available();                  // built, and at least one device can be used
int device_count();                // 0 when not built or no driver/device
std::string device_description();  // "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)"

// Waits for every op queued so far; throws ssm::Error if one of them failed on the device.
void synchronize();

// Tests: fill every block the allocator hands out with NaN bytes (0xFF), so an output element a
// kernel forgot to write is caught.
void set_poison_allocations(bool on);

size_t cached_bytes();     // held by the allocator for reuse
size_t allocated_bytes();  // handed out and not yet freed
void empty_cache();        // returns every cached block to the driver

}  // namespace ssm::cuda
