#pragma once
// The `ssm bench` suites. Each runs its timings (progress on stderr), and returns every number
// as one JSON object; print_* writes the llama-bench style table on stdout.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_common.h"

namespace ssm::cli {

// S4D and S4 layers, forward + backward, float32, x (B, L, H).
struct LtiBenchOptions {
  BenchCommonOptions common;
  int threads = 0;  // 0: the current thread count
  int64_t batch = 16, channels = 128, state = 64, length = 1024;
  std::vector<std::string> layers = {"s4d", "s4"};
};
nlohmann::json run_lti_bench(const LtiBenchOptions& o);
void print_lti_bench(const nlohmann::json& result);

// Selective scan (B, D, L, N) and SSD (B, L, H, P, N), forward + backward, float32.
struct ScanBenchOptions {
  BenchCommonOptions common;
  int threads = 0;
  int torch_runs = 0;  // 0: as many as --runs
  int64_t batch = 4, length = 1024;
  int64_t d_inner = 1536, scan_state = 16;             // selective scan
  int64_t heads = 24, head_dim = 64, ssd_state = 128;  // SSD
  int64_t chunk = 0;                                   // ssm SSD chunk length; 0: the op's default
  int64_t torch_chunk = 128;  // PyTorch SSD chunk length (its fastest of 64, 128, 256 here)
  std::vector<std::string> ops = {"selective_scan", "ssd"};
  std::string device = "cpu";  // "cuda": both sides on the GPU
};
nlohmann::json run_scan_bench(const ScanBenchOptions& o);
void print_scan_bench(const nlohmann::json& result);

// Mamba language model: prefill (pp) and decode (tg) tokens/s at batch 1, and decode's
// weight-reading bandwidth against the machine's measured memory bandwidth.
struct LmBenchOptions {
  BenchCommonOptions common;
  std::string model_dir;  // empty: random weights of the shape below
  int64_t prompt = 512, generate = 128;
  std::vector<int> threads = {1, 2};
  int64_t n_layer = 24, d_model = 768, vocab = 50280, d_state = 16, expand = 2;
  int64_t bandwidth_mib = 256;                   // size of each of the bandwidth test's arrays
  std::string device = "cpu";                    // "cuda": the GPU suite (bench_lm_cuda.cpp)
  int64_t train_batch = 8, train_length = 2048;  // GPU training test; 0 skips it
};
nlohmann::json run_lm_bench(const LmBenchOptions& o);
void print_lm_bench(const nlohmann::json& result);
void print_lm_bench_cuda(const nlohmann::json& result);

// Sustained memory bandwidth with the current thread count, best of `reps` passes over arrays
// of `array_bytes` each, counting bytes read + written (STREAM's convention: no write-allocate
// traffic): copy a = b, triad a = b + s·c, and read (Σ a).
struct Bandwidth {
  double copy_gbs = 0, triad_gbs = 0, read_gbs = 0;
  int64_t array_bytes = 0;
};
Bandwidth measure_bandwidth(int64_t array_bytes, int reps);

}  // namespace ssm::cli
