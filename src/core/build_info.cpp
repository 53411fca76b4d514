#include "ssm/core/build_info.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <vector>

#include "ssm/core/threads.h"

extern "C" char* openblas_get_config(void);
extern "C" char* openblas_get_corename(void);

namespace ssm {

namespace {
std::string compiled_cpu_features() {
  std::vector<std::string> f;
#ifdef __SSE4_2__
  f.emplace_back("sse4.2");
#endif
#ifdef __AVX__
  f.emplace_back("avx");
#endif
#ifdef __AVX2__
  f.emplace_back("avx2");
#endif
#ifdef __FMA__
  f.emplace_back("fma");
#endif
#ifdef __AVX512F__
  f.emplace_back("avx512f");
#endif
#ifdef __ARM_NEON
  f.emplace_back("neon");
#endif
  return f.empty() ? std::string("baseline (sse2)") : fmt::format("{}", fmt::join(f, " "));
}
}  // namespace

BuildInfo build_info() {
  BuildInfo b;
  b.version = SSM_VERSION;
  b.build_type = SSM_BUILD_TYPE;
  b.native = SSM_NATIVE_BUILD;
  b.cpu_features = compiled_cpu_features();
  b.threads = get_num_threads();
  b.blas = std::string("OpenBLAS ") + openblas_get_config() + " (core " + openblas_get_corename() + ")";
  b.fft = "KissFFT (kissfft.hh, float32 and float64)";
#ifdef SSM_WITH_CUDA
  b.cuda_built = true;
#endif
  return b;
}

}  // namespace ssm
