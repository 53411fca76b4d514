// `ssm bench lm --device cuda`: the Mamba LM on the GPU, float32.
//   ppP            the prompt through prefill, P / time
//   tgN (eager)    N steps of MambaLM::step, op by op (host-side dispatch and launches per op)
//   tgN (graph)    N steps through GraphedDecoder (one CUDA graph replay per token; each step
//                  copies its token to the device, which waits for the previous step)
//   train BxL      forward + cross-entropy + backward + AdamW on (B, L) random tokens
// Every timed run ends with a device synchronisation. Decode reads every weight once per token,
// so tokens/s × weight bytes is compared with the device's copy bandwidth measured here.
#include <fmt/format.h>

#include "bench_lm_model.h"
#include "ssm/autograd/node.h"
#include "ssm/core/cuda.h"
#include "ssm/infer/graphed_decoder.h"
#include "ssm/ops/loss.h"
#include "ssm/optim/adamw.h"
#include "ssm/optim/param_groups.h"

namespace ssm::cli {

namespace {

// Device-to-device copy of `bytes` (one Tensor copy_), best of `reps`, read + write GB/s.
double device_copy_gbs(int64_t bytes, int reps) {
  const int64_t n = bytes / 4;
  const Tensor src = Tensor::ones({n}, DType::F32).to(Device::CUDA);
  Tensor dst = Tensor::empty({n}, DType::F32, Device::CUDA);
  dst.copy_(src);
  cuda::synchronize();
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const Stats t = time_ms("device copy", 0, 1, [&] {
      dst.copy_(src);
      cuda::synchronize();
    });
    best = std::max(best, 2.0 * static_cast<double>(n) * 4 / (t.samples[0] * 1e-3) / 1e9);
  }
  return best;
}

nlohmann::json decode_row(const std::string& test, const Stats& tps, double weight_bytes,
                          double copy_gbs) {
  const double gbs = tps.mean() * weight_bytes / 1e9;
  return {{"test", test},
          {"tokens_per_s", tps.to_json()},
          {"decode_gbs", gbs},
          {"bandwidth_fraction", gbs / copy_gbs}};
}

}  // namespace

nlohmann::json run_lm_bench_cuda(const LmBenchOptions& o) {
  SSM_CHECK(cuda::available(), "bench lm: --device cuda, but {}",
            cuda::built() ? "this machine has no usable CUDA device"
                          : "this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
  SSM_CHECK(o.train_batch >= 0 && o.train_length >= 0,
            "bench lm: --train-batch and --train-length expected >= 0");
  std::fprintf(stderr, "bench lm: building the model on %s\n", cuda::device_description().c_str());
  const LoadedModel lm = load_model(o);
  nn::MambaLM& model = *lm.model;
  model.to(Device::CUDA);
  const double weight_bytes =
      static_cast<double>(model.num_parameters()) * static_cast<double>(dtype_size(model.dtype()));
  const int64_t vocab = model.config.vocab_size;
  Generator gen(1);
  const Tensor prompt = random_ids(1, o.prompt, vocab, gen);
  const Tensor tokens = random_ids(1, o.generate, vocab, gen).select(0, 0);
  const int warm = o.common.warmup, runs = o.common.runs;
  const auto synced = [](const std::function<void()>& fn) {
    return [fn] {
      fn();
      cuda::synchronize();
    };
  };
  const double copy_gbs = device_copy_gbs(int64_t{o.bandwidth_mib} << 20, 5);
  nlohmann::json results = nlohmann::json::array();
  const std::string pp = fmt::format("pp{}", o.prompt), tg = fmt::format("tg{}", o.generate);
  {
    NoGradGuard no_grad;
    const Stats pp_ms =
        time_ms("ssm " + pp, warm, runs, synced([&] { (void)model.prefill(prompt); }));
    results.push_back({{"test", pp}, {"tokens_per_s", tokens_per_s(pp_ms, o.prompt).to_json()}});

    const Stats eager_ms = time_ms("ssm " + tg + " (eager)", warm, runs, synced([&] {
                                     nn::MambaLMCache cache = model.init_cache(1);
                                     for (int64_t i = 0; i < o.generate; ++i)
                                       (void)model.step(tokens.narrow(0, i, 1), cache);
                                   }));
    results.push_back(
        decode_row(tg + " (eager)", tokens_per_s(eager_ms, o.generate), weight_bytes, copy_gbs));

    // The capture is made once (its cost reported apart); the timed runs continue its state.
    const Stats capture_ms = time_ms("ssm graph capture", 0, 1, [&] {
      infer::GraphedDecoder probe(model, model.init_cache(1));
      cuda::synchronize();
    });
    infer::GraphedDecoder decoder(model, model.init_cache(1));
    const Stats graph_ms = time_ms("ssm " + tg + " (graph)", warm, runs, synced([&] {
                                     for (int64_t i = 0; i < o.generate; ++i)
                                       (void)decoder.step(tokens.narrow(0, i, 1));
                                   }));
    nlohmann::json row =
        decode_row(tg + " (graph)", tokens_per_s(graph_ms, o.generate), weight_bytes, copy_gbs);
    row["capture_ms"] = capture_ms.samples[0];
    results.push_back(row);
  }
  if (o.train_batch > 0 && o.train_length > 0) {
    const int64_t B = o.train_batch, L = o.train_length;
    const Tensor ids = random_ids(B, L + 1, vocab, gen).to(Device::CUDA);
    const Tensor inputs = ids.narrow(1, 0, L).contiguous();
    const Tensor targets = ids.narrow(1, 1, L).contiguous().view({B * L});
    optim::AdamW opt(optim::make_param_groups(model.named_parameters(), 1e-4, 0.1, 1e-4));
    const std::string name = fmt::format("train {}x{}", B, L);
    const Stats ms = time_ms("ssm " + name, warm, runs, synced([&] {
                               const Tensor logits = model.forward(inputs);
                               cross_entropy(logits.view({B * L, vocab}), targets).backward();
                               opt.step();
                               opt.zero_grad();
                             }));
    results.push_back({{"test", name}, {"tokens_per_s", tokens_per_s(ms, B * L).to_json()}});
  }
  return {{"suite", "lm"},        {"device", cuda::device_description()},
          {"runs", runs},         {"warmup", warm},
          {"batch", 1},           {"model", model_json(lm)},
          {"copy_gbs", copy_gbs}, {"results", results}};
}

void print_lm_bench_cuda(const nlohmann::json& r) {
  const auto& m = r["model"];
  fmt::print("device: {} | runs: {} | float32 | device copy {:.0f} GB/s (read + write)\n\n",
             r["device"].get<std::string>(), r["runs"].get<int>(), r["copy_gbs"].get<double>());
  std::vector<std::vector<std::string>> rows;
  for (const auto& row : r["results"]) {
    const auto& t = row["tokens_per_s"];
    const std::string gbs = row.contains("decode_gbs")
                                ? fmt::format("{:.0f} ({:.1f}%)", row["decode_gbs"].get<double>(),
                                              100 * row["bandwidth_fraction"].get<double>())
                                : "";
    rows.push_back({m["name"].get<std::string>(), row["test"].get<std::string>(),
                    mean_pm_std(t["mean"], t["std"]), gbs});
  }
  print_table({"model", "test", "t/s", "decode GB/s (% of copy)"}, rows);
}

}  // namespace ssm::cli
