#include "ssm/core/threads.h"

#include <omp.h>

#include <cstdlib>
#include <string>

#include "ssm/core/error.h"

extern "C" void openblas_set_num_threads(int);

namespace ssm {

namespace {
int initial_threads() {
  if (const char* env = std::getenv("SSM_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    SSM_CHECK(end != env && *end == '\0' && v > 0,
              "SSM_NUM_THREADS: expected a positive integer, got '{}'", env);
    return static_cast<int>(v);
  }
  return omp_get_num_procs();
}

int& thread_count() {
  static int n = [] {
    int v = initial_threads();
    omp_set_num_threads(v);
    openblas_set_num_threads(v);
    return v;
  }();
  return n;
}
}  // namespace

void set_num_threads(int n) {
  SSM_CHECK(n > 0, "threads: expected a positive thread count, got {}", n);
  thread_count() = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int get_num_threads() { return thread_count(); }

}  // namespace ssm
