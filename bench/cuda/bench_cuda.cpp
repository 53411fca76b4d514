// CUDA benchmarks: the device's copy bandwidth (the memory-bound ceiling), then the selective
// scan forward and backward at Mamba-1 sizes, each against the bytes it must move at least.
//
//   ssm_bench_cuda [--reps 10] [--lengths 2048,4096,8192,16384]
//
// Times are medians over --reps runs, each bracketed by stream synchronisations and read off the
// host clock after two warm-up runs. Inputs are fresh random normals (never zeros).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "ssm/core/cuda.h"
#include "ssm/core/rng.h"
#include "ssm/kernels/selective_scan.h"

using namespace ssm;

namespace {

double median_ms(int reps, const std::function<void()>& run) {
  for (int i = 0; i < 2; ++i) run();
  cuda::synchronize();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    cuda::synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    run();
    cuda::synchronize();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

Tensor device_randn(const Shape& shape, Generator& g, double scale = 1, double shift = 0) {
  Tensor t = randn(shape, DType::F32, &g);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(shift + scale * p[i]);
  return t.to(Device::CUDA);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 10;
  std::vector<int64_t> lengths = {2048, 4096, 8192, 16384};
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--lengths") && i + 1 < argc) {
      lengths.clear();
      for (char* tok = std::strtok(argv[++i], ","); tok; tok = std::strtok(nullptr, ","))
        lengths.push_back(std::atoll(tok));
    }
  }
  if (!cuda::available()) {
    std::printf("no CUDA device\n");
    return 1;
  }
  std::printf("device: %s\n\n", cuda::device_description().c_str());

  // Ceiling: a device-to-device copy of 2 GiB, counting bytes read plus bytes written.
  const int64_t copy_elems = int64_t{1} << 29;
  Tensor src = Tensor::empty({copy_elems}, DType::F32, Device::CUDA);
  Tensor dst = Tensor::empty({copy_elems}, DType::F32, Device::CUDA);
  const double copy_ms = median_ms(reps, [&] { dst.copy_(src); });
  const double copy_gbs = 2.0 * copy_elems * 4 / (copy_ms * 1e-3) / 1e9;
  std::printf("| ceiling | bytes | ms | GB/s |\n|---|---|---|---|\n");
  std::printf("| D2D copy (read + write) | %.2f GB | %.3f | %.0f |\n\n", 2.0 * copy_elems * 4 / 1e9,
              copy_ms, copy_gbs);
  src = Tensor();
  dst = Tensor();
  cuda::empty_cache();

  // Selective scan at (B = 8, D = 2048, N = 16, G = 1), f32, with D, z, delta_bias, softplus.
  const int64_t batch = 8, dim = 2048, n_state = 16, groups = 1;
  std::printf(
      "| op | B | D | N | L | fwd ms | bwd ms | fwd+bwd ms | min bytes fwd+bwd | GB/s | %% of copy "
      "|\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int64_t len : lengths) {
    Generator g(1234 + len);
    kernels::cpu::SelectiveScanInputs in;
    in.u = device_randn({batch, dim, len}, g);
    in.delta = device_randn({batch, dim, len}, g, 0.5, -1.0);
    in.A = device_randn({dim, n_state}, g, 0.5, -1.5);
    in.B = device_randn({batch, groups, n_state, len}, g);
    in.C = device_randn({batch, groups, n_state, len}, g);
    in.D = device_randn({dim}, g);
    in.z = device_randn({batch, dim, len}, g);
    in.delta_bias = device_randn({dim}, g, 0.2);
    in.delta_softplus = true;
    const Tensor dout = device_randn({batch, dim, len}, g);
    kernels::cpu::SelectiveScanForward fwd;
    const double fwd_ms = median_ms(reps, [&] { fwd = kernels::cuda::selective_scan_fwd(in); });
    const double bwd_ms = median_ms(reps, [&] {
      (void)kernels::cuda::selective_scan_bwd(in, fwd.chunk_states, dout, Tensor());
    });
    // Each (B, D, L) tensor and each (B, G, N, L) tensor read or written once: the forward reads
    // u, delta, z, B, C and writes out; the backward reads u, delta, z, dout, B, C and writes
    // du, ddelta, dz, dB, dC.
    const double bdl = double(batch) * dim * len * 4,
                 bgnl = double(batch) * groups * n_state * len * 4;
    const double bytes = (4 * bdl + 2 * bgnl) + (7 * bdl + 4 * bgnl);
    const double total = fwd_ms + bwd_ms;
    const double gbs = bytes / (total * 1e-3) / 1e9;
    std::printf(
        "| selective_scan f32 | %lld | %lld | %lld | %lld | %.3f | %.3f | %.3f | %.2f GB | %.0f | "
        "%.0f%% |\n",
        (long long)batch, (long long)dim, (long long)n_state, (long long)len, fwd_ms, bwd_ms, total,
        bytes / 1e9, gbs, 100 * gbs / copy_gbs);
    std::fflush(stdout);
  }
  return 0;
}
