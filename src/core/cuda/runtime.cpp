// The CUDA runtime: device queries, the library's stream, the caching allocator and copies.
// Without the backend every entry point reports that this build has no CUDA.
#include "core/cuda/graph.h"
#include "core/cuda/memory.h"
#include "ssm/core/cuda.h"
#include "ssm/core/error.h"

#ifdef SSM_WITH_CUDA
#include <cuda_runtime_api.h>

#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/cuda/check.h"
#include "kernels/cuda/strided_copy.h"
#endif

namespace ssm::cuda {

#ifdef SSM_WITH_CUDA

namespace {

using detail::HeldBlock;

// Rounded sizes make freed blocks reusable by requests of nearby sizes: 512 B steps up to 1 MiB,
// 2 MiB steps above (the driver's large-page granularity).
size_t rounded_size(size_t n) {
  constexpr size_t kSmallStep = 512, kLargeStep = size_t{2} << 20, kSmallLimit = size_t{1} << 20;
  if (n == 0) n = 1;
  const size_t step = n <= kSmallLimit ? kSmallStep : kLargeStep;
  return (n + step - 1) / step * step;
}

class CachingAllocator {
 public:
  void* allocate(size_t nbytes) {
    const size_t size = rounded_size(nbytes);
    void* ptr = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        ptr = it->second.back();
        it->second.pop_back();
        cached_ -= size;
      }
    }
    if (ptr == nullptr) ptr = fresh(size);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      allocated_ += size;
    }
    if (poison_)
      SSM_CUDA_CHECK(cudaMemsetAsync(ptr, 0xFF, size, detail::stream()), "cuda allocator");
    return ptr;
  }

  void deallocate(void* ptr, size_t nbytes) noexcept {
    const size_t size = rounded_size(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    allocated_ -= size;
    if (holding_) {  // a graph being captured may write this block again at every replay
      held_.push_back({ptr, size});
      return;
    }
    free_[size].push_back(ptr);
    cached_ += size;
  }

  // While holding, freed blocks are set aside instead of being reused; end_hold hands them over.
  void begin_hold() {
    std::lock_guard<std::mutex> lock(mutex_);
    SSM_CHECK(!holding_, "cuda graph: a capture is already in progress");
    holding_ = true;
  }
  std::vector<HeldBlock> end_hold() {
    std::lock_guard<std::mutex> lock(mutex_);
    holding_ = false;
    return std::exchange(held_, {});
  }
  void release(const std::vector<HeldBlock>& blocks) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const HeldBlock& b : blocks) {
      free_[b.size].push_back(b.ptr);
      cached_ += b.size;
    }
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_all_locked();
  }

  size_t cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }
  size_t allocated() {
    std::lock_guard<std::mutex> lock(mutex_);
    return allocated_;
  }
  void set_poison(bool on) { poison_ = on; }

 private:
  void* fresh(size_t size) {
    SSM_CHECK(available(), "cuda allocator: no usable CUDA device ({} found{})", device_count(),
              device_count() == 0 ? "; is the NVIDIA driver loaded?" : "");
    void* ptr = nullptr;
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // clear the sticky-free allocation error, then retry uncached
      SSM_CUDA_CHECK(cudaStreamSynchronize(detail::stream()), "cuda allocator");
      empty_cache();
      err = cudaMalloc(&ptr, size);
    }
    if (err == cudaErrorMemoryAllocation)
      SSM_FAIL("cuda allocator: out of device memory allocating {} bytes ({} in use)", size,
               allocated());
    SSM_CUDA_CHECK(err, "cuda allocator");
    return ptr;
  }

  void release_all_locked() {
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) (void)cudaFree(p);
    free_.clear();
    cached_ = 0;
  }

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0, allocated_ = 0;
  bool poison_ = false;
  bool holding_ = false;
  std::vector<HeldBlock> held_;
};

// Never destroyed: the CUDA runtime may already be torn down when static destructors run.
CachingAllocator& allocator() {
  static auto* a = new CachingAllocator();
  return *a;
}

}  // namespace

namespace detail {

cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t created = nullptr;
    SSM_CUDA_CHECK(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking), "cuda stream");
    return created;
  }();
  return s;
}

void* allocate(size_t nbytes) {
  return allocator().allocate(nbytes);
}
void deallocate(void* ptr, size_t nbytes) noexcept {
  allocator().deallocate(ptr, nbytes);
}

void copy(void* dst, const void* src, size_t nbytes, CopyKind kind) {
  if (nbytes == 0) return;
  const cudaMemcpyKind k = kind == CopyKind::HostToDevice   ? cudaMemcpyHostToDevice
                           : kind == CopyKind::DeviceToHost ? cudaMemcpyDeviceToHost
                                                            : cudaMemcpyDeviceToDevice;
  SSM_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, k, stream()), "Tensor copy");
  // Host memory may be pageable and is read or written by the caller right after: wait.
  if (kind != CopyKind::DeviceToDevice)
    SSM_CUDA_CHECK(cudaStreamSynchronize(stream()), "Tensor copy");
}

void begin_hold() {
  allocator().begin_hold();
}
std::vector<HeldBlock> end_hold() {
  return allocator().end_hold();
}
void release(const std::vector<HeldBlock>& blocks) noexcept {
  allocator().release(blocks);
}

bool capturing() {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  SSM_CUDA_CHECK(cudaStreamIsCapturing(stream(), &status), "cuda graph");
  return status == cudaStreamCaptureStatusActive;
}

void zero(void* dst, size_t nbytes) {
  if (nbytes == 0) return;
  SSM_CUDA_CHECK(cudaMemsetAsync(dst, 0, nbytes, stream()), "Tensor zeros");
}

void copy_strided(void* dst, const int64_t* dst_strides, const void* src,
                  const int64_t* src_strides, const int64_t* shape, int ndim, int elem_size) {
  using kernels::cuda::kMaxCopyDims;
  SSM_CHECK(ndim <= kMaxCopyDims, "Tensor copy: {} dimensions exceed the CUDA limit of {}", ndim,
            kMaxCopyDims);
  kernels::cuda::StridedCopyArgs a{};
  a.ndim = ndim;
  a.numel = 1;
  for (int d = 0; d < ndim; ++d) {
    a.shape[d] = shape[d];
    a.src_strides[d] = src_strides[d];
    a.dst_strides[d] = dst_strides[d];
    a.numel *= shape[d];
  }
  a.src = src;
  a.dst = dst;
  a.elem_size = elem_size;
  SSM_CUDA_CHECK(kernels::cuda::launch_strided_copy(a, stream()), "Tensor copy (strided)");
}

}  // namespace detail

bool built() {
  return true;
}

int device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

bool available() {
  return device_count() > 0;
}

std::string device_description() {
  SSM_CHECK(available(), "cuda: no usable CUDA device");
  int dev = 0;
  SSM_CUDA_CHECK(cudaGetDevice(&dev), "cuda::device_description");
  cudaDeviceProp p{};
  SSM_CUDA_CHECK(cudaGetDeviceProperties(&p, dev), "cuda::device_description");
  return fmt::format("{} (sm_{}{}, {} SMs, {:.1f} GiB)", p.name, p.major, p.minor,
                     p.multiProcessorCount, p.totalGlobalMem / double(1u << 30));
}

void synchronize() {
  if (!available()) return;
  SSM_CUDA_CHECK(cudaStreamSynchronize(detail::stream()), "cuda::synchronize");
}

void set_poison_allocations(bool on) {
  allocator().set_poison(on);
}
size_t cached_bytes() {
  return allocator().cached();
}
size_t allocated_bytes() {
  return allocator().allocated();
}
void empty_cache() {
  allocator().empty_cache();
}

#else  // no CUDA backend

namespace {
[[noreturn]] void no_cuda(const char* what) {
  SSM_FAIL("{}: this build has no CUDA backend (configure with -DSSM_CUDA=ON, or --preset cuda)",
           what);
}
}  // namespace

namespace detail {
void* allocate(size_t) {
  no_cuda("cuda allocator");
}
void deallocate(void*, size_t) noexcept {}
void copy(void*, const void*, size_t, CopyKind) {
  no_cuda("Tensor copy");
}
void zero(void*, size_t) {
  no_cuda("Tensor zeros");
}
void copy_strided(void*, const int64_t*, const void*, const int64_t*, const int64_t*, int, int) {
  no_cuda("Tensor copy");
}
}  // namespace detail

bool built() {
  return false;
}
int device_count() {
  return 0;
}
bool available() {
  return false;
}
std::string device_description() {
  no_cuda("cuda::device_description");
}
void synchronize() {}
void set_poison_allocations(bool) {}
size_t cached_bytes() {
  return 0;
}
size_t allocated_bytes() {
  return 0;
}
void empty_cache() {}

#endif

}  // namespace ssm::cuda
