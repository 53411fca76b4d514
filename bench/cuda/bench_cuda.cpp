// CUDA benchmarks: the device's copy bandwidth (the memory-bound ceiling) and cuBLAS GEMM rate
// (the compute-bound one: float32, and TF32 with SSM_CUDA_TF32=1, through matmul), linear forward
// + backward at a Mamba in_proj size, then the selective scan forward and backward at Mamba-1
// sizes and SSD (Mamba-2) forward and backward at Mamba-2 sizes, each against the bytes it must
// move at least.
//
//   ssm_bench_cuda [--reps 10] [--lengths 2048,4096,8192,16384] [--ops gemm,scan,ssd]
//                  [--gemm-size 8192]
//
// Times are medians over --reps runs (the GEMM rows: mean ± std over max(--reps, 5) runs), each
// bracketed by stream synchronisations and read off the host clock after two warm-up runs.
// Inputs are fresh random normals (never zeros).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ssm/autograd/node.h"
#include "ssm/core/cuda.h"
#include "ssm/core/rng.h"
#include "ssm/kernels/selective_scan.h"
#include "ssm/ops/linear.h"
#include "ssm/ops/ssd.h"

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

// Mean and sample standard deviation of `reps` timed runs (ms), after two warm-up runs.
std::pair<double, double> mean_std_ms(int reps, const std::function<void()>& run) {
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
  double mean = 0, var = 0;
  for (double v : ms) mean += v / ms.size();
  for (double v : ms) var += (v - mean) * (v - mean) / std::max<size_t>(ms.size() - 1, 1);
  return {mean, std::sqrt(var)};
}

Tensor device_randn(const Shape& shape, Generator& g, double scale = 1, double shift = 0) {
  Tensor t = randn(shape, DType::F32, &g);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(shift + scale * p[i]);
  return t.to(Device::CUDA);
}

// SSD at (B = 8, H = 32, P = 64, N = 128, G = 1), f32, with D and an initial state: the forward
// alone (no graph), then forward + backward through the autograd op (backward = the difference).
void bench_ssd(int reps, const std::vector<int64_t>& lengths, double copy_gbs) {
  const int64_t batch = 8, heads = 32, head_dim = 64, n_state = 128, groups = 1;
  std::printf(
      "\n| op | B | H | P | N | L | fwd ms | bwd ms | fwd+bwd ms | min bytes fwd+bwd | GB/s | %% "
      "of copy |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int64_t len : lengths) {
    Generator g(4321 + len);
    auto leaf = [](Tensor t) { return t.requires_grad_(); };
    Tensor x = leaf(device_randn({batch, len, heads, head_dim}, g));
    // dt in about (0.005, 0.1) and A in about (-8, -1): the usual Mamba-2 ranges, always > 0 / < 0.
    Tensor dt = randn({batch, len, heads}, DType::F32, &g);
    for (float *p = dt.data<float>(), *e = p + dt.numel(); p != e; ++p)
      *p = 0.005f + 0.095f / (1.0f + std::exp(-*p));
    dt = leaf(dt.to(Device::CUDA));
    Tensor A = randn({heads}, DType::F32, &g);
    for (float *p = A.data<float>(), *e = p + A.numel(); p != e; ++p)
      *p = -1.0f - 7.0f / (1.0f + std::exp(-*p));
    A = leaf(A.to(Device::CUDA));
    Tensor B = leaf(device_randn({batch, len, groups, n_state}, g));
    Tensor C = leaf(device_randn({batch, len, groups, n_state}, g));
    SsdOptions opt;
    opt.D = leaf(device_randn({heads}, g));
    opt.initial_state = leaf(device_randn({batch, heads, head_dim, n_state}, g));
    const Tensor dy = device_randn({batch, len, heads, head_dim}, g);
    const Tensor dfinal = device_randn({batch, heads, head_dim, n_state}, g);
    const double fwd_ms = median_ms(reps, [&] {
      NoGradGuard no_grad;
      (void)ssd(x, dt, A, B, C, opt);
    });
    const double total = median_ms(reps, [&] {
      SsdResult r = ssd(x, dt, A, B, C, opt);
      run_backward({r.y, r.final_state}, {dy, dfinal}, false);
    });
    // Forward reads x, dt, B, C, the initial state and writes y and the final state; backward
    // reads x, dt, B, C, dy, dfinal, the initial state and writes dx, ddt, dB, dC, dinitial.
    const double blhp = double(batch) * len * heads * head_dim * 4,
                 blh = double(batch) * len * heads * 4,
                 blgn = double(batch) * len * groups * n_state * 4,
                 bhpn = double(batch) * heads * head_dim * n_state * 4;
    const double bytes =
        (2 * blhp + blh + 2 * blgn + 2 * bhpn) + (3 * blhp + 2 * blh + 4 * blgn + 3 * bhpn);
    const double gbs = bytes / (total * 1e-3) / 1e9;
    std::printf(
        "| ssd f32 | %lld | %lld | %lld | %lld | %lld | %.3f | %.3f | %.3f | %.2f GB | %.0f | "
        "%.1f%% |\n",
        (long long)batch, (long long)heads, (long long)head_dim, (long long)n_state, (long long)len,
        fwd_ms, total - fwd_ms, total, bytes / 1e9, gbs, 100 * gbs / copy_gbs);
    std::fflush(stdout);
    cuda::empty_cache();
  }
}

// The GEMM ceiling: matmul of two (n, n) float32 matrices (one cuBLAS GEMM, 2n³ flops), exact
// float32 and TF32; then linear forward + backward at a Mamba in_proj size (three GEMMs, 6·R·in·out
// flops, plus the bias add and its column sum), float32. GFLOP/s as mean ± std over the runs.
void bench_gemm(int reps, int64_t n) {
  reps = std::max(reps, 5);
  Generator g(777);
  std::printf("| ceiling | M×N×K | ms | GFLOP/s |\n|---|---|---|---|\n");
  {
    const Tensor a = device_randn({n, n}, g), b = device_randn({n, n}, g);
    for (bool tf32 : {false, true}) {
      if (tf32) setenv("SSM_CUDA_TF32", "1", 1);
      const auto [mean, sd] = mean_std_ms(reps, [&] {
        NoGradGuard no_grad;
        (void)matmul(a, b);
      });
      if (tf32) unsetenv("SSM_CUDA_TF32");
      const double flops = 2.0 * n * n * n;
      // The std of a rate from the std of its time (first order: rate · sd / mean).
      const double rate = flops / (mean * 1e-3) / 1e9;
      std::printf("| cuBLAS GEMM %s | %lld³ | %.3f ± %.3f | %.0f ± %.0f |\n", tf32 ? "tf32" : "f32",
                  (long long)n, mean, sd, rate, rate * sd / mean);
      std::fflush(stdout);
    }
  }
  cuda::empty_cache();
  const int64_t rows = 8 * 2048, in = 768, out = 2 * 1536;
  Tensor x = device_randn({8, 2048, in}, g).requires_grad_();
  Tensor w = device_randn({out, in}, g, 0.03).requires_grad_();
  Tensor bias = device_randn({out}, g).requires_grad_();
  const Tensor dy = device_randn({8, 2048, out}, g);
  const auto [mean, sd] = mean_std_ms(reps, [&] {
    Tensor y = linear(x, w, bias);
    y.backward(dy);
    x.zero_grad();
    w.zero_grad();
    bias.zero_grad();
  });
  const double rate = 6.0 * rows * in * out / (mean * 1e-3) / 1e9;
  std::printf(
      "| linear f32 fwd+bwd (8, 2048, %lld) → %lld | %lld×%lld×%lld ×3 | %.3f ± %.3f | "
      "%.0f ± %.0f |\n\n",
      (long long)in, (long long)out, (long long)rows, (long long)out, (long long)in, mean, sd, rate,
      rate * sd / mean);
  std::fflush(stdout);
  cuda::empty_cache();
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 10;
  std::vector<int64_t> lengths = {2048, 4096, 8192, 16384};
  std::string ops = "gemm,scan,ssd";
  int64_t gemm_size = 8192;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--lengths") && i + 1 < argc) {
      lengths.clear();
      for (char* tok = std::strtok(argv[++i], ","); tok; tok = std::strtok(nullptr, ","))
        lengths.push_back(std::atoll(tok));
    }
    if (!std::strcmp(argv[i], "--ops") && i + 1 < argc) ops = argv[++i];
    if (!std::strcmp(argv[i], "--gemm-size") && i + 1 < argc) gemm_size = std::atoll(argv[++i]);
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

  if (ops.find("gemm") != std::string::npos) bench_gemm(reps, gemm_size);
  if (ops.find("ssd") != std::string::npos) bench_ssd(reps, lengths, copy_gbs);
  if (ops.find("scan") == std::string::npos) return 0;
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
