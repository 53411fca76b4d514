// The library's one cuBLAS handle. Every GEMM runs on the library's one stream, so one handle on
// that stream keeps cuBLAS work in order with our own kernels and copies; cuBLAS allows several
// host threads to share a handle as long as none changes its settings, and after creation
// nothing does (the math mode is chosen per call through the compute type).
#include "ssm/core/error.h"

#ifdef SSM_WITH_CUDA
#include <cstdlib>
#include <cstring>

#include "core/cuda/check.h"
#include "core/cuda/cublas.h"
#include "ssm/core/cuda.h"

namespace ssm::cuda::detail {

cublasHandle_t cublas_handle() {
  // Leaked on purpose: static destructors may run after the CUDA runtime has been torn down,
  // where cublasDestroy would fail or crash; the driver reclaims the handle at process exit
  // (the caching allocator is kept alive to the end for the same reason).
  static cublasHandle_t handle = [] {
    SSM_CHECK(available(), "cuBLAS: no usable CUDA device ({} found)", device_count());
    cublasHandle_t created = nullptr;
    SSM_CUBLAS_CHECK(cublasCreate(&created), "cuBLAS handle");
    SSM_CUBLAS_CHECK(cublasSetStream(created, stream()), "cuBLAS handle");
    return created;
  }();
  return handle;
}

bool tf32_enabled() {
  const char* v = std::getenv("SSM_CUDA_TF32");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

}  // namespace ssm::cuda::detail

#endif
