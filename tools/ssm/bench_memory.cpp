// Memory bandwidth as the STREAM benchmark measures it: arrays far larger than the caches,
// first touched by the threads that later use them, best of several passes.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>

#include "bench_suites.h"
#include "ssm/core/error.h"

namespace ssm::cli {

namespace {

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float[], FreeDeleter>;

Buffer allocate(int64_t n) {
  const size_t bytes = (static_cast<size_t>(n) * sizeof(float) + 63) / 64 * 64;
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  SSM_CHECK(p != nullptr, "bench: cannot allocate {} bytes for the bandwidth test", bytes);
  return Buffer(p);
}

// Seconds of the fastest of `reps` calls.
template <typename Fn>
double best_seconds(int reps, Fn fn) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    const std::chrono::duration<double> t = std::chrono::steady_clock::now() - start;
    best = std::min(best, t.count());
  }
  return best;
}

}  // namespace

Bandwidth measure_bandwidth(int64_t array_bytes, int reps) {
  SSM_CHECK(array_bytes >= 1 << 20, "bench: bandwidth arrays expected >= 1 MiB, got {} bytes",
            array_bytes);
  SSM_CHECK(reps >= 1, "bench: bandwidth repetitions expected >= 1, got {}", reps);
  const int64_t n = array_bytes / static_cast<int64_t>(sizeof(float));
  Buffer a = allocate(n), b = allocate(n), c = allocate(n);
  float *pa = a.get(), *pb = b.get(), *pc = c.get();
  // First touch by the same static schedule the timed loops use (pages land near their user).
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    pa[i] = 0.0f;
    pb[i] = 1.0f;
    pc[i] = 2.0f;
  }
  const double bytes = static_cast<double>(n) * sizeof(float);
  const double copy = best_seconds(reps, [&] {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) pa[i] = pb[i];
  });
  const float s = 3.0f;
  const double triad = best_seconds(reps, [&] {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) pa[i] = pb[i] + s * pc[i];
  });
  double sink = 0;
  const double read = best_seconds(reps, [&] {
    double total = 0;
#pragma omp parallel reduction(+ : total)
    {
      // Independent partial sums (a plain float sum is one latency-bound dependency chain).
      constexpr int kLanes = 32;
      float acc[kLanes] = {};
#pragma omp for schedule(static) nowait
      for (int64_t i = 0; i < n / kLanes; ++i)
        for (int j = 0; j < kLanes; ++j) acc[j] += pb[i * kLanes + j];
      for (int j = 0; j < kLanes; ++j) total += acc[j];
    }
    sink += total;
  });
  // Checked so that the compiler keeps the read loop (b is all ones).
  const double expected = static_cast<double>(reps) * static_cast<double>(n / 32 * 32);
  SSM_CHECK(std::abs(sink - expected) <= 1e-6 * expected,
            "bench: bandwidth self-check failed (sum {}, expected {})", sink, expected);
  Bandwidth bw;
  bw.array_bytes = array_bytes;
  bw.copy_gbs = 2 * bytes / copy / 1e9;
  bw.triad_gbs = 3 * bytes / triad / 1e9;
  bw.read_gbs = static_cast<double>(n / 32 * 32) * sizeof(float) / read / 1e9;
  return bw;
}

}  // namespace ssm::cli
