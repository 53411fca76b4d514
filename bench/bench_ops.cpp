// Microbenchmarks of the CPU ops at one fixed, realistic size each (float32).
// Items are tokens (B·L rows), so items/s reads as tokens per second.
//
//   SSM_NUM_THREADS=2 ./ssm_bench_ops --benchmark_repetitions=10
//
// bench/run_ops_bench.sh runs this next to bench/torch_ops.py (the same computations in
// PyTorch) and prints the comparison table.
#include <benchmark/benchmark.h>

#include "ssm/core/rng.h"
#include "ssm/core/threads.h"
#include "ssm/ops/conv.h"
#include "ssm/ops/linear.h"
#include "ssm/ops/norm.h"

namespace {

using ssm::DType;
using ssm::Tensor;

constexpr int64_t kBatch = 16, kLength = 1024, kChannels = 256, kConvWidth = 4;
constexpr int64_t kTokens = kBatch * kLength;

Tensor input(const ssm::Shape& shape, uint64_t seed, bool requires_grad = false) {
  ssm::Generator gen(seed);
  Tensor t = ssm::randn(shape, DType::F32, &gen);
  if (requires_grad) t.requires_grad_();
  return t;
}

// Runs `forward` (and, when `with_backward`, a backward pass from a fixed upstream gradient
// with the parameters' gradients cleared first, as an optimiser loop would) per iteration.
template <typename Forward>
void run(benchmark::State& state, std::vector<Tensor> params, const ssm::Shape& out_shape,
         bool with_backward, Forward forward) {
  const Tensor grad_out = input(out_shape, 99);
  for (auto _ : state) {
    for (Tensor& p : params) p.zero_grad();
    Tensor y = forward();
    if (with_backward) y.backward(grad_out);
    benchmark::DoNotOptimize(y.raw_data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kTokens);
}

void BM_linear(benchmark::State& state) {
  const bool bwd = state.range(0);
  Tensor x = input({kTokens, kChannels}, 1, bwd), w = input({kChannels, kChannels}, 2, bwd);
  run(state, {x, w}, {kTokens, kChannels}, bwd, [&] { return ssm::linear(x, w); });
}

void BM_layer_norm(benchmark::State& state) {
  const bool bwd = state.range(0);
  Tensor x = input({kBatch, kLength, kChannels}, 3, bwd);
  Tensor w = input({kChannels}, 4, bwd), b = input({kChannels}, 5, bwd);
  run(state, {x, w, b}, x.shape(), bwd, [&] { return ssm::layer_norm(x, w, b); });
}

void BM_rms_norm(benchmark::State& state) {
  const bool bwd = state.range(0);
  Tensor x = input({kBatch, kLength, kChannels}, 6, bwd), w = input({kChannels}, 7, bwd);
  run(state, {x, w}, x.shape(), bwd, [&] { return ssm::rms_norm(x, w); });
}

void BM_causal_conv1d(benchmark::State& state) {
  const bool bwd = state.range(0);
  Tensor x = input({kBatch, kChannels, kLength}, 8, bwd);
  Tensor w = input({kChannels, kConvWidth}, 9, bwd), b = input({kChannels}, 10, bwd);
  run(state, {x, w, b}, x.shape(), bwd, [&] { return ssm::causal_conv1d(x, w, b); });
}

void BM_fft_conv(benchmark::State& state) {
  const bool bwd = state.range(0);
  Tensor u = input({kBatch, kChannels, kLength}, 11, bwd);
  Tensor k = input({kChannels, kLength}, 12, bwd);
  run(state, {u, k}, u.shape(), bwd, [&] { return ssm::fft_conv(u, k); });
}

// Arg 0: forward only; 1: forward + backward.
#define SSM_OP_BENCHMARK(fn) \
  BENCHMARK(fn)->ArgName("backward")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()

SSM_OP_BENCHMARK(BM_linear);
SSM_OP_BENCHMARK(BM_layer_norm);
SSM_OP_BENCHMARK(BM_rms_norm);
SSM_OP_BENCHMARK(BM_causal_conv1d);
SSM_OP_BENCHMARK(BM_fft_conv);

}  // namespace

int main(int argc, char** argv) {
  // Reads SSM_NUM_THREADS (default: all cores) and applies it to OpenMP and OpenBLAS.
  ssm::set_num_threads(ssm::get_num_threads());
  benchmark::AddCustomContext("ssm_threads", std::to_string(ssm::get_num_threads()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
