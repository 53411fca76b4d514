#pragma once
// Internal: device memory and copies for Storage and Tensor. Present in every build; without
// the CUDA backend each function throws ssm::Error ("built without CUDA").
#include <cstddef>
#include <cstdint>

namespace ssm::cuda::detail {

void* allocate(size_t nbytes);                       // from the caching allocator
void deallocate(void* ptr, size_t nbytes) noexcept;  // back to the cache
enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };
// Copies in stream order; a copy to the host waits for it before returning.
void copy(void* dst, const void* src, size_t nbytes, CopyKind kind);
// Zeroes nbytes of device memory, in stream order.
void zero(void* dst, size_t nbytes);
// Device to device, any strides (in elements) on both sides, one element size (4 or 8 bytes).
void copy_strided(void* dst, const int64_t* dst_strides, const void* src,
                  const int64_t* src_strides, const int64_t* shape, int ndim, int elem_size);

}  // namespace ssm::cuda::detail
