// `ssm bench lti`: S4D and S4 layer forward + backward against the same layers in PyTorch
// (bench/torch_lti.py), one layer at a time, ssm first, so both sides of a row see the same load.
#include <fmt/format.h>

#include "bench_suites.h"
#include "ssm/core/rng.h"
#include "ssm/core/threads.h"
#include "ssm/nn/s4.h"
#include "ssm/nn/s4d.h"

namespace ssm::cli {

namespace {

// Forward + backward from a fixed upstream gradient, every gradient cleared first (as an
// optimiser loop does), x requiring grad as inside a model.
template <typename Layer>
Stats time_layer(const std::string& label, const Layer& layer, const LtiBenchOptions& o,
                 Generator& gen) {
  Tensor x = randn({o.batch, o.length, o.channels}, DType::F32, &gen).requires_grad_();
  const Tensor grad_out = randn({o.batch, o.length, o.channels}, DType::F32, &gen);
  std::vector<Tensor> params = layer.parameters();
  params.push_back(x);
  return time_ms(label, o.common.warmup, o.common.runs, [&] {
    for (Tensor& p : params) p.zero_grad();
    layer.forward(x).backward(grad_out);
  });
}

Stats time_ssm_layer(const std::string& name, const LtiBenchOptions& o) {
  Generator gen(0);
  if (name == "s4d") {
    nn::S4DOptions so;
    so.d_model = o.channels;
    so.d_state = o.state;
    return time_layer("ssm s4d", nn::S4D(so, gen), o, gen);
  }
  nn::S4Options so;
  so.d_model = o.channels;
  so.d_state = o.state;
  so.l_max = o.length;
  return time_layer("ssm s4", nn::S4(so, gen), o, gen);
}

}  // namespace

nlohmann::json run_lti_bench(const LtiBenchOptions& o) {
  SSM_CHECK(o.batch > 0 && o.channels > 0 && o.length > 0,
            "bench lti: sizes expected > 0, got B={} H={} L={}", o.batch, o.channels, o.length);
  SSM_CHECK(o.state > 0 && o.state % 2 == 0, "bench lti: --state expected even and > 0, got {}",
            o.state);
  for (const auto& l : o.layers)
    SSM_CHECK(l == "s4d" || l == "s4", "bench lti: unknown layer '{}' (expected s4d or s4)", l);
  if (o.threads > 0) set_num_threads(o.threads);
  const int threads = get_num_threads();
  TorchRunner torch(o.common);
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& layer : o.layers) {
    const Stats ssm = time_ssm_layer(layer, o);
    const nlohmann::json t = torch.run(
        "torch_lti.py",
        fmt::format("--layer {} --runs {} --warmup {} --batch {} --channels {} --state {} "
                    "--length {}",
                    layer, o.common.runs, o.common.warmup, o.batch, o.channels, o.state, o.length),
        threads);
    rows.push_back(comparison_row(layer + " fwd+bwd", ssm, t));
  }
  return {{"suite", "lti"},
          {"cpu", cpu_model()},
          {"threads", threads},
          {"runs", o.common.runs},
          {"warmup", o.common.warmup},
          {"dtype", "float32"},
          {"sizes", {{"B", o.batch}, {"H", o.channels}, {"N", o.state}, {"L", o.length}}},
          {"torch", torch.to_json()},
          {"results", rows}};
}

void print_lti_bench(const nlohmann::json& r) {
  const auto& s = r["sizes"];
  fmt::print("cpu: {} | threads: {} | runs: {} | float32, B={} H={} N={} L={} | {}\n\n",
             r["cpu"].get<std::string>(), r["threads"].get<int>(), r["runs"].get<int>(),
             s["B"].get<int64_t>(), s["H"].get<int64_t>(), s["N"].get<int64_t>(),
             s["L"].get<int64_t>(), torch_label(r["torch"]));
  print_comparison_table("layer", r["results"]);
}

}  // namespace ssm::cli
