// `ssm bench scan`: the selective scan (Mamba-1) and SSD (Mamba-2) ops, forward + backward,
// against PyTorch (bench/torch_scan.py: the sequential selective-scan reference and a chunked
// SSD from the equations), op by op, ssm first. Inputs are drawn as the torch script draws them.
#include <fmt/format.h>

#include "bench_suites.h"
#include "ssm/autograd/node.h"
#include "ssm/core/cuda.h"
#include "ssm/core/rng.h"
#include "ssm/core/threads.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/selective_scan.h"
#include "ssm/ops/ssd.h"

namespace ssm::cli {

namespace {

Device device_of(const ScanBenchOptions& o) {
  return o.device == "cuda" ? Device::CUDA : Device::CPU;
}

// An input drawn on the CPU (the same numbers for either device), moved, requiring grad.
Tensor leaf(const Tensor& t, Device device) {
  return t.detach().to(device).contiguous().requires_grad_();
}

// Forward + backward from a fixed upstream gradient, every input's gradient cleared first; on
// the GPU each run ends with a device synchronisation.
template <typename Forward>
Stats time_op(const std::string& label, const BenchCommonOptions& c, std::vector<Tensor> inputs,
              const Tensor& grad_out, Forward forward) {
  return time_ms(label, c.warmup, c.runs, [&] {
    for (Tensor& t : inputs) t.zero_grad();
    forward().backward(grad_out);
    if (grad_out.device() == Device::CUDA) cuda::synchronize();
  });
}

Stats time_selective_scan(const ScanBenchOptions& o) {
  Generator gen(0);
  const int64_t b = o.batch, d = o.d_inner, l = o.length, n = o.scan_state;
  Tensor A = Tensor::empty({d, n});  // S4D-Real: A = −(1..N) in every channel
  float* pa = A.data<float>();
  for (int64_t i = 0; i < d * n; ++i) pa[i] = -static_cast<float>(i % n + 1);
  const Device dev = device_of(o);
  Tensor u = leaf(randn({b, d, l}, DType::F32, &gen), dev);
  Tensor delta = leaf(randn({b, d, l}, DType::F32, &gen) * 0.5 - 1.0, dev);
  Tensor B = leaf(randn({b, 1, n, l}, DType::F32, &gen), dev);
  Tensor C = leaf(randn({b, 1, n, l}, DType::F32, &gen), dev);
  Tensor D = leaf(randn({d}, DType::F32, &gen), dev);
  Tensor z = leaf(randn({b, d, l}, DType::F32, &gen), dev);
  Tensor bias = leaf(randn({d}, DType::F32, &gen) * 0.1, dev);
  A = leaf(A, dev);
  const Tensor grad_out = randn({b, d, l}, DType::F32, &gen).to(dev);
  SelectiveScanOptions so;
  so.D = D;
  so.z = z;
  so.delta_bias = bias;
  so.delta_softplus = true;
  return time_op("ssm selective_scan", o.common, {u, delta, A, B, C, D, z, bias}, grad_out,
                 [&] { return selective_scan(u, delta, A, B, C, so).out; });
}

Stats time_ssd(const ScanBenchOptions& o) {
  Generator gen(1);
  const int64_t b = o.batch, l = o.length, h = o.heads, p = o.head_dim, n = o.ssd_state;
  const Device dev = device_of(o);
  Tensor x = leaf(randn({b, l, h, p}, DType::F32, &gen), dev);
  Tensor dt;
  {
    NoGradGuard no_grad;
    dt = leaf(softplus(randn({b, l, h}, DType::F32, &gen) - 2.0), dev);
  }
  Tensor A = leaf(rand_uniform({h}, -16.0, -1.0, DType::F32, &gen), dev);
  Tensor B = leaf(randn({b, l, 1, n}, DType::F32, &gen), dev);
  Tensor C = leaf(randn({b, l, 1, n}, DType::F32, &gen), dev);
  Tensor D = leaf(randn({h}, DType::F32, &gen), dev);
  const Tensor grad_out = randn({b, l, h, p}, DType::F32, &gen).to(dev);
  SsdOptions so;
  so.D = D;
  if (o.chunk > 0) so.chunk_size = o.chunk;
  return time_op("ssm ssd", o.common, {x, dt, A, B, C, D}, grad_out,
                 [&] { return ssd(x, dt, A, B, C, so).y; });
}

int64_t ssm_chunk(const ScanBenchOptions& o) {
  return o.chunk > 0 ? o.chunk : SsdOptions{}.chunk_size;
}

}  // namespace

nlohmann::json run_scan_bench(const ScanBenchOptions& o) {
  SSM_CHECK(o.batch > 0 && o.length > 0 && o.d_inner > 0 && o.scan_state > 0 && o.heads > 0 &&
                o.head_dim > 0 && o.ssd_state > 0,
            "bench scan: sizes expected > 0");
  SSM_CHECK(o.torch_chunk > 0 && o.length % o.torch_chunk == 0,
            "bench scan: --length {} expected a multiple of --torch-chunk {}", o.length,
            o.torch_chunk);
  for (const auto& op : o.ops)
    SSM_CHECK(op == "selective_scan" || op == "ssd",
              "bench scan: unknown op '{}' (expected selective_scan or ssd)", op);
  SSM_CHECK(o.device == "cpu" || o.device == "cuda",
            "bench scan: --device expected cpu or cuda, got '{}'", o.device);
  const bool gpu = o.device == "cuda";
  if (gpu)
    SSM_CHECK(cuda::available(), "bench scan: --device cuda, but {}",
              cuda::built() ? "this machine has no usable CUDA device"
                            : "this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
  if (o.threads > 0) set_num_threads(o.threads);
  const int threads = get_num_threads();
  const int torch_runs = o.torch_runs > 0 ? o.torch_runs : o.common.runs;
  TorchRunner torch(o.common);
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& op : o.ops) {
    const bool scan = op == "selective_scan";
    const Stats ssm = scan ? time_selective_scan(o) : time_ssd(o);
    const nlohmann::json t = torch.run(
        "torch_scan.py",
        fmt::format("--op {} --runs {} --warmup {} --batch {} --length {} --d-inner {} "
                    "--scan-state {} --heads {} --head-dim {} --ssd-state {} --chunk {} "
                    "--device {}",
                    op, torch_runs, std::min(o.common.warmup, 1), o.batch, o.length, o.d_inner,
                    o.scan_state, o.heads, o.head_dim, o.ssd_state, o.torch_chunk, o.device),
        threads);
    rows.push_back(comparison_row(op + " fwd+bwd", ssm, t));
  }
  return {{"suite", "scan"},
          {"cpu", gpu ? cuda::device_description() : cpu_model()},
          {"device", o.device},
          {"threads", threads},
          {"runs", o.common.runs},
          {"torch_runs", torch_runs},
          {"warmup", o.common.warmup},
          {"dtype", "float32"},
          {"sizes",
           {{"selective_scan",
             {{"B", o.batch}, {"D", o.d_inner}, {"L", o.length}, {"N", o.scan_state}, {"G", 1}}},
            {"ssd",
             {{"B", o.batch},
              {"H", o.heads},
              {"P", o.head_dim},
              {"N", o.ssd_state},
              {"L", o.length},
              {"G", 1},
              {"chunk", ssm_chunk(o)},
              {"torch_chunk", o.torch_chunk}}}}},
          {"torch", torch.to_json()},
          {"results", rows}};
}

void print_scan_bench(const nlohmann::json& r) {
  const auto& s = r["sizes"];
  const auto& sc = s["selective_scan"];
  const auto& sd = s["ssd"];
  fmt::print("{}: {} | threads: {} | runs: {} (torch: {}) | float32 | {}\n",
             r.value("device", "cpu") == "cuda" ? "device" : "cpu", r["cpu"].get<std::string>(),
             r["threads"].get<int>(), r["runs"].get<int>(), r["torch_runs"].get<int>(),
             torch_label(r["torch"]));
  fmt::print(
      "selective_scan B={} D={} L={} N={}; ssd B={} H={} P={} N={} L={} chunk {} (torch {})\n\n",
      sc["B"].get<int64_t>(), sc["D"].get<int64_t>(), sc["L"].get<int64_t>(),
      sc["N"].get<int64_t>(), sd["B"].get<int64_t>(), sd["H"].get<int64_t>(),
      sd["P"].get<int64_t>(), sd["N"].get<int64_t>(), sd["L"].get<int64_t>(),
      sd["chunk"].get<int64_t>(), sd["torch_chunk"].get<int64_t>());
  print_comparison_table("op", r["results"]);
}

}  // namespace ssm::cli
