// `ssm bench lm`: llama-bench's pp/tg tests for a Mamba language model at batch 1.
//   ppP: the prompt of P tokens through the parallel path (MambaLM::prefill), P / time;
//   tgN: N decode steps (MambaLM::step) from an empty cache, N / time.
// Decode reads every weight once per token (the tied embedding in full, as the lm_head), so
// tokens/s × weight bytes is the bandwidth decode sustains; it is compared with the machine's
// bandwidth measured in the same run with the same thread count.
#include <fmt/format.h>

#include <memory>

#include "bench_lm_model.h"
#include "bench_suites.h"
#include "ssm/core/rng.h"
#include "ssm/core/threads.h"
#include "ssm/nn/mamba_lm.h"

namespace ssm::cli {

namespace {

constexpr int kBandwidthReps = 5;

}  // namespace

nlohmann::json run_lm_bench(const LmBenchOptions& o) {
  SSM_CHECK(o.prompt > 0, "bench lm: -p expected > 0, got {}", o.prompt);
  SSM_CHECK(o.generate > 0, "bench lm: -n expected > 0, got {}", o.generate);
  if (o.device == "cuda") return run_lm_bench_cuda(o);
  SSM_CHECK(!o.threads.empty(), "bench lm: --threads expected at least one count");
  for (int t : o.threads) SSM_CHECK(t > 0, "bench lm: --threads expected > 0, got {}", t);
  std::fprintf(stderr, "bench lm: building the model (%s)\n",
               o.model_dir.empty() ? "random weights" : o.model_dir.c_str());
  const LoadedModel lm = load_model(o);
  const nn::MambaLM& model = *lm.model;
  const int64_t params = model.num_parameters();
  const int64_t weight_bytes = params * static_cast<int64_t>(dtype_size(model.dtype()));
  const int64_t vocab = model.config.vocab_size;
  Generator gen(1);
  const Tensor prompt = random_ids(1, o.prompt, vocab, gen);
  const Tensor tokens = random_ids(1, o.generate, vocab, gen);
  const std::string pp = fmt::format("pp{}", o.prompt), tg = fmt::format("tg{}", o.generate);

  nlohmann::json results = nlohmann::json::array(), bandwidths = nlohmann::json::array();
  for (int threads : o.threads) {
    set_num_threads(threads);
    std::fprintf(stderr, "bench lm: memory bandwidth with %d thread(s)\n", threads);
    const Bandwidth bw = measure_bandwidth(o.bandwidth_mib << 20, kBandwidthReps);
    bandwidths.push_back({{"threads", threads},
                          {"copy_gbs", bw.copy_gbs},
                          {"triad_gbs", bw.triad_gbs},
                          {"read_gbs", bw.read_gbs},
                          {"array_bytes", bw.array_bytes},
                          {"reps", kBandwidthReps}});

    const Stats pp_ms = time_ms(fmt::format("ssm {} threads={}", pp, threads), o.common.warmup,
                                o.common.runs, [&] { (void)model.prefill(prompt); });
    const Stats pp_tps = tokens_per_s(pp_ms, o.prompt);
    results.push_back({{"test", pp}, {"threads", threads}, {"tokens_per_s", pp_tps.to_json()}});

    const Stats tg_ms =
        time_ms(fmt::format("ssm {} threads={}", tg, threads), o.common.warmup, o.common.runs, [&] {
          nn::MambaLMCache cache = model.init_cache(1);
          for (int64_t i = 0; i < o.generate; ++i)
            (void)model.step(tokens.select(0, 0).narrow(0, i, 1), cache);
        });
    const Stats tg_tps = tokens_per_s(tg_ms, o.generate);
    const double decode_gbs = tg_tps.mean() * static_cast<double>(weight_bytes) / 1e9;
    results.push_back({{"test", tg},
                       {"threads", threads},
                       {"tokens_per_s", tg_tps.to_json()},
                       {"decode_gbs", decode_gbs},
                       {"bandwidth_gbs", bw.triad_gbs},
                       {"bandwidth_fraction", decode_gbs / bw.triad_gbs},
                       {"read_fraction", decode_gbs / bw.read_gbs}});
  }
  return {{"suite", "lm"},
          {"cpu", cpu_model()},
          {"runs", o.common.runs},
          {"warmup", o.common.warmup},
          {"batch", 1},
          {"model", model_json(lm)},
          {"bandwidth", bandwidths},
          {"results", results}};
}

void print_lm_bench(const nlohmann::json& r) {
  if (r.contains("device")) return print_lm_bench_cuda(r);
  const auto& m = r["model"];
  fmt::print("cpu: {} | runs: {} | batch 1 | float32\n\n", r["cpu"].get<std::string>(),
             r["runs"].get<int>());
  const std::string size = fmt::format("{:.2f} MiB", m["weight_bytes"].get<double>() / (1 << 20));
  const std::string params = fmt::format("{:.2f} M", m["params"].get<double>() / 1e6);
  std::vector<std::vector<std::string>> rows, bw_rows;
  size_t i = 0;
  for (const auto& row : r["results"]) {
    const auto& t = row["tokens_per_s"];
    const std::string threads = std::to_string(row["threads"].get<int>());
    rows.push_back({m["name"].get<std::string>(), size, params, threads,
                    row["test"].get<std::string>(), mean_pm_std(t["mean"], t["std"])});
    if (!row.contains("decode_gbs")) continue;
    const auto& bw = r["bandwidth"][i++];
    bw_rows.push_back({threads, fmt::format("{:.2f}", bw["copy_gbs"].get<double>()),
                       fmt::format("{:.2f}", bw["triad_gbs"].get<double>()),
                       fmt::format("{:.2f}", bw["read_gbs"].get<double>()),
                       fmt::format("{:.2f}", row["decode_gbs"].get<double>()),
                       fmt::format("{:.1f}%", 100 * row["bandwidth_fraction"].get<double>()),
                       fmt::format("{:.1f}%", 100 * row["read_fraction"].get<double>())});
  }
  print_table({"model", "size", "params", "threads", "test", "t/s"}, rows);
  fmt::print(
      "\ndecode GB/s = weight bytes read per token ({:.1f} MB: every parameter once, the tied "
      "embedding as lm_head) × tg t/s; memory bandwidth measured in this run (best of {}, arrays "
      "of {} MiB, bytes read + written):\n\n",
      m["weight_bytes"].get<double>() / 1e6, r["bandwidth"][0]["reps"].get<int>(),
      r["bandwidth"][0]["array_bytes"].get<int64_t>() >> 20);
  print_table(
      {"threads", "copy GB/s", "triad GB/s", "read GB/s", "decode GB/s", "% of triad", "% of read"},
      bw_rows);
}

}  // namespace ssm::cli
